// Each target row's source rows in increasing j, as a CSR list: the stable counting sort of an
// index (index[j] = the target of source row j) that the CUDA scatters use, so that one thread
// per target adds its sources in the CPU's order (combineRows, scatterAddRows; and
// pleat_kernel_emulation, which runs their element functions on the host).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace pleat {

struct RowLists {
  std::vector<int32_t> offsets;  // targets + 1
  std::vector<int32_t> order;    // n: target t's sources are order[offsets[t] .. offsets[t + 1])
};

// The lists of idx[0, n) over `targets` rows. Returns n, or the position of the first entry
// outside [0, targets) (the lists are then unfinished).
inline size_t build_row_lists(const int32_t* idx, size_t n, size_t targets, RowLists* out) {
  out->offsets.assign(targets + 1, 0);
  out->order.assign(n, 0);
  for (size_t j = 0; j < n; ++j) {
    if (idx[j] < 0 || static_cast<size_t>(idx[j]) >= targets) return j;
    ++out->offsets[static_cast<size_t>(idx[j]) + 1];
  }
  for (size_t i = 0; i < targets; ++i) out->offsets[i + 1] += out->offsets[i];
  std::vector<int32_t> next(out->offsets.begin(), out->offsets.end() - 1);
  for (size_t j = 0; j < n; ++j) out->order[static_cast<size_t>(next[static_cast<size_t>(idx[j])]++)] = static_cast<int32_t>(j);
  return n;
}

}  // namespace pleat
