// Argument checks the dispatch kernels' bindings share (dispatch_binding.cc,
// dispatch_sources_binding.cc).
#pragma once

#include <napi.h>

#include <string>

#include "kernels/rows.h"
#include "napi_args.h"

namespace pleat {

// Every entry of `index` below `bound`, else a RangeError naming the first outside.
inline bool expect_indices(Napi::Env env, const char* fn, const char* name, const ArrayArg& index, size_t bound, const char* what) {
  const ptrdiff_t bad = first_bad_index(index.i32(), index.length, bound);
  if (bad < 0) return true;
  return throw_range_error(env, std::string(fn) + ": " + name + "[" + std::to_string(bad) + "] = " + std::to_string(index.i32()[bad]) +
                                    " is out of range [0, " + std::to_string(bound) + ") (" + what + ")");
}

}  // namespace pleat
