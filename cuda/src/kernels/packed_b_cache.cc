// packed_b_cache (see packed_b_cache.h): a map from B's identity to its panels, under a mutex
// (ranks of the threads backend multiply concurrently); entries are immutable once built and
// shared with the products reading them.
#include "packed_b_cache.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <tuple>

#include "thread_pool.h"

namespace pleat {
namespace gemm {

PackedB::~PackedB() { std::free(data); }

namespace {

using Key = std::tuple<const float*, size_t, size_t, bool, const void*, size_t>;

struct Entry {
  uint64_t generation;
  std::shared_ptr<PackedB> packed;
  // Its generation's step ended (retire_generation): droppable for room.
  bool retired = false;
};

std::mutex g_lock;
std::map<Key, Entry> g_entries;
// Bytes of the entries plus those reserved by builds under way.
size_t g_bytes = 0, g_builds = 0, g_hits = 0;
// Counts clears, so a build that straddles one does not put its entry back.
uint64_t g_epoch = 0;
std::atomic<uint64_t> g_next{1};

// The bytes of B's panels for tile t (the key fixes them).
size_t bytes_for(const Tile& t, const GemmArgs& g) {
  const size_t nr = static_cast<size_t>(t.nr);
  return (((g.n + nr - 1) / nr) * nr * g.k * sizeof(float) + 63) / 64 * 64;
}

// Packs op(B) into the canonical layout, the k blocks spread over the pool: into `reuse` (the
// key's entry of an earlier generation, which no product reads any more) when given, else into
// new memory. Reusing it matters: a weight's panels are rebuilt every step, and fresh memory is
// faulted in each time (a [1024, 1024] weight's rebuild took 2-2.7 ms in training against 0.4 ms
// into memory already touched, on a 2-vCPU VM where a first touch is dear).
std::shared_ptr<PackedB> build(const Tile& t, const GemmArgs& g, size_t kc_max, std::shared_ptr<PackedB> reuse) {
  const size_t nr = static_cast<size_t>(t.nr);
  std::shared_ptr<PackedB> p = reuse != nullptr ? std::move(reuse) : std::make_shared<PackedB>();
  p->kc_max = kc_max;
  p->panels = (g.n + nr - 1) / nr;
  if (p->data == nullptr) {
    p->bytes = bytes_for(t, g);
    p->data = static_cast<float*>(std::aligned_alloc(64, p->bytes));
    if (p->data == nullptr) return nullptr;
  }
  const size_t ldb = g.trans_b ? g.k : g.n;
  if (!g.trans_b) {
    // The bytes pack_b writes (panel element [p, j] at p * nr + j, zeros past n), B read a whole
    // row at a time: a panel at a time reads a few lines of each row, rows a matrix row apart,
    // which the prefetchers do not follow (1.2 against ~0.4 ms for a cold [1024, 1024] B).
    pool_for(g.k, g.k * g.n * 2 * sizeof(float), [&](size_t begin, size_t end) {
      for (size_t row = begin; row < end; ++row) {
        const size_t pc = row / kc_max * kc_max, kc = std::min(kc_max, g.k - pc), p_in = row - pc;
        const float* src = g.b + row * ldb;
        float* block = p->data + pc * p->panels * nr;
        for (size_t jp = 0; jp < p->panels; ++jp) {
          float* d = block + jp * nr * kc + p_in * nr;
          const size_t j0 = jp * nr, cols = std::min(nr, g.n - j0);
          std::memcpy(d, src + j0, cols * sizeof(float));
          if (cols < nr) std::memset(d + cols, 0, (nr - cols) * sizeof(float));
        }
      }
    });
    return p;
  }
  const size_t blocks = (g.k + kc_max - 1) / kc_max;
  pool_for(blocks, g.k * g.n * 2 * sizeof(float), [&](size_t begin, size_t end) {
    for (size_t q = begin; q < end; ++q) {
      const size_t pc = q * kc_max, kc = std::min(kc_max, g.k - pc);
      t.pack_b(g.b, ldb, g.trans_b, pc, kc, 0, g.n, p->data + pc * p->panels * nr);
    }
  });
  return p;
}

}  // namespace

std::shared_ptr<const PackedB> packed_b(const Tile& t, const GemmArgs& g, size_t kc_max, uint64_t generation) {
  // The canonical layout addresses column blocks by j0 / nr: every tile's nc is a multiple of nr.
  if (t.nc % static_cast<size_t>(t.nr) != 0) return nullptr;
  const Key key{g.b, g.n, g.k, g.trans_b, static_cast<const void*>(&t), kc_max};
  const size_t need = bytes_for(t, g);
  // The key's entry of an earlier generation, to pack into when nothing reads it any more (the
  // key fixes the size).
  std::shared_ptr<PackedB> reuse;
  uint64_t epoch = 0;
  {
    std::lock_guard<std::mutex> guard(g_lock);
    auto it = g_entries.find(key);
    if (it != g_entries.end()) {
      if (it->second.generation == generation) {
        ++g_hits;
        return it->second.packed;
      }
      g_bytes -= it->second.packed->bytes;
      if (it->second.packed.use_count() == 1) {
        std::atomic_thread_fence(std::memory_order_acquire);
        reuse = std::move(it->second.packed);
      }
      g_entries.erase(it);
    }
    if (g_bytes + need > kPackedBBytes) {
      // Entries of retired generations (steps that ended) are dead weight: drop them. Live ones
      // (other ranks' steps in this process) stay; past the cap the product packs B itself.
      for (auto e = g_entries.begin(); e != g_entries.end();) {
        if (e->second.retired) {
          g_bytes -= e->second.packed->bytes;
          e = g_entries.erase(e);
        } else {
          ++e;
        }
      }
      if (g_bytes + need > kPackedBBytes) return nullptr;
    }
    // Reserved now, so concurrent builds cannot pass the cap together.
    g_bytes += need;
    epoch = g_epoch;
  }
  // Packed outside the lock (other ranks' products go on); a concurrent build of the same key
  // (the same B under the same generation) gives the same bytes, and the last one stays.
  std::shared_ptr<PackedB> packed = build(t, g, kc_max, std::move(reuse));
  std::lock_guard<std::mutex> guard(g_lock);
  // A clear since the reservation emptied the map and its count: nothing to give back, and the
  // panels serve this product only.
  if (epoch != g_epoch) return packed;
  g_bytes -= need;
  if (packed == nullptr) return nullptr;
  auto it = g_entries.find(key);
  if (it != g_entries.end()) g_bytes -= it->second.packed->bytes;
  g_entries[key] = Entry{generation, packed, false};
  g_bytes += packed->bytes;
  ++g_builds;
  return packed;
}

uint64_t next_generation() { return g_next.fetch_add(1); }

void retire_generation(uint64_t generation) {
  std::lock_guard<std::mutex> guard(g_lock);
  for (auto& e : g_entries) {
    if (e.second.generation == generation) e.second.retired = true;
  }
}

void clear_packed_b() {
  std::lock_guard<std::mutex> guard(g_lock);
  g_entries.clear();
  g_bytes = 0;
  ++g_epoch;
}

PackedBStats packed_b_stats() {
  std::lock_guard<std::mutex> guard(g_lock);
  return PackedBStats{g_entries.size(), g_bytes, g_builds, g_hits};
}

}  // namespace gemm
}  // namespace pleat
