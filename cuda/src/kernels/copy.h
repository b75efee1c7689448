// copy: byte copy between host buffers (memmove semantics); the bandwidth reference of the
// benches.
#pragma once

#include <cstddef>

#include "cpu_features.h"

namespace pleat {

// Scalar reference: one byte at a time, walking away from the overlap when the buffers
// overlap, so it has memmove's result for every input.
void copy_ref(void* dst, const void* src, size_t bytes);

// Isa::Scalar runs copy_ref (so tests can pin the reference); otherwise the C library's
// memmove, the fastest copy the machine has (glibc picks vector and non-temporal stores at
// run time). memmove rather than memcpy because JS callers may pass overlapping views.
void copy(Isa isa, void* dst, const void* src, size_t bytes);

}  // namespace pleat
