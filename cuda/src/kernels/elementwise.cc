// elementwise kernels (declared in elementwise.h).
#include "elementwise.h"
