// The dims of an attention call (b, sq, sk, hq, hkv, d, dv, scale, causal from argument `first`
// on), checked the one way both addons' attention bindings check them: sizes, sequence lengths
// that int32 positions can count, hq a multiple of hkv, a finite scale, and a shape whose every
// flat size is exact. `Shape` is the CPU's AttnArgs or the device's element::AttnShape (the same
// field names). False with the JS error thrown on the first problem.
#pragma once

#include <napi.h>

#include <cmath>
#include <string>

#include "napi_args.h"

namespace pleat {

template <typename Shape>
bool parse_attn_shape(const Napi::CallbackInfo& info, const char* fn, size_t first, Shape* a) {
  Napi::Env env = info.Env();
  const double max_seq = 2147483647.0;  // positions are int32
  double scale = 0.0;
  if (!expect_size(info, fn, first, "b", &a->b) || !expect_size(info, fn, first + 1, "sq", &a->sq, max_seq) ||
      !expect_size(info, fn, first + 2, "sk", &a->sk, max_seq) || !expect_size(info, fn, first + 3, "hq", &a->hq) ||
      !expect_size(info, fn, first + 4, "hkv", &a->hkv) || !expect_size(info, fn, first + 5, "d", &a->d) ||
      !expect_size(info, fn, first + 6, "dv", &a->dv) || !expect_number(info, fn, first + 7, "scale", &scale) ||
      !expect_bool(info, fn, first + 8, "causal", &a->causal)) {
    return false;
  }
  if (a->hkv == 0 || a->hq % a->hkv != 0) {
    return throw_range_error(env, std::string(fn) + ": hq (" + std::to_string(a->hq) + ") must be a multiple of hkv (" + std::to_string(a->hkv) +
                                      "), and hkv at least 1");
  }
  if (!std::isfinite(scale)) return throw_range_error(env, std::string(fn) + ": scale must be finite");
  a->scale = static_cast<float>(scale);
  size_t t = 1;
  // Every flat size is a product of some of these; bounding the product of all (zeros counted
  // as 1) keeps each of them exact.
  for (size_t dim : {a->b, a->sq, a->sk, a->hq, a->hkv, a->d, a->dv}) {
    if (!checked_mul(env, fn, "the attention shape", t, dim == 0 ? 1 : dim, &t)) return false;
  }
  return true;
}

// Optional Int32Array positions (queryPositions, keyPositions, queryFirstKeys) at argument
// `index`: null / undefined (*present false), or S or B * S entries.
inline bool parse_attn_positions(const Napi::CallbackInfo& info, const char* fn, size_t index, const char* name, size_t batch, size_t s, ArrayArg* p,
                                 bool* present) {
  *present = !(info[index].IsNull() || info[index].IsUndefined());
  if (!*present) return true;
  if (!expect_array(info, fn, index, name, {napi_int32_array}, p)) return false;
  if (p->length == s || p->length == batch * s) return true;
  return throw_range_error(info.Env(), std::string(fn) + ": " + name + " has " + std::to_string(p->length) + " elements, expected S = " + std::to_string(s) +
                                           " or B * S = " + std::to_string(batch * s));
}

}  // namespace pleat
