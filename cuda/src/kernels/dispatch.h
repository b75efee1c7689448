// dispatch kernels: see the declarations below.
#pragma once

#include <cstddef>
#include <cstdint>
