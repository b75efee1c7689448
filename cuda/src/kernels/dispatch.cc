// dispatch kernels (declared in dispatch.h).
#include "dispatch.h"
