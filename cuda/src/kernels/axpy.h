// axpy: y[i] += a * x[i], in place, on host memory.
//
// Rounding contract (the property tests rely on it):
//   float64, every ISA: multiply then add, two roundings, exactly what JS computes for
//                       `y[i] + a * x[i]`; the build uses -ffp-contract=off so no FMA sneaks in.
//   float32, avx2/avx512: one fused multiply-add (one rounding).
//   float32, scalar:      multiply then add in float (two roundings), like axpy_f32_ref.
// x and y may be the same pointer (element-wise update); partial overlap is the caller's bug
// (the binding rejects it).
#pragma once

#include <cstddef>

#include "cpu_features.h"

namespace pleat {

// Scalar references: the specification the vector versions are tested against.
void axpy_f32_ref(float a, const float* x, float* y, size_t n);
void axpy_f64_ref(double a, const double* x, double* y, size_t n);

// Dispatching versions: `isa` must be supported by the CPU (use active_isa()).
void axpy_f32(Isa isa, float a, const float* x, float* y, size_t n);
void axpy_f64(Isa isa, double a, const double* x, double* y, size_t n);

}  // namespace pleat
