// CachingAllocator: device memory for tensors without a cudaMalloc / cudaFree per op.
//
// cudaMalloc synchronises the device and costs tens to hundreds of microseconds, and cudaFree
// synchronises too, so tensor storage is carved out of cached segments (the design of
// PyTorch's CUDA caching allocator, written here from its documented behaviour):
//   - sizes round up to 512 bytes; requests up to 1 MiB come from 2 MiB "small" segments,
//     larger ones from segments rounded up to 2 MiB ("large"); a free block is split when the
//     rest is worth keeping (512 bytes small, more than 1 MiB large) and freed neighbours in a
//     segment merge again;
//   - every segment belongs to the stream it was allocated for. A block freed on its own stream
//     is reusable at once (later work on that stream is ordered after the earlier use). A block
//     also used on other streams (`record_stream`) becomes reusable only once an event recorded
//     on each of those streams at free time has completed;
//   - when the device is out of memory the allocator releases every cached segment that holds
//     no live block and tries once more; then it returns nullptr (the caller reports the stats).
// Best fit: the smallest free block of the stream's pool that fits (ties: lowest address).
//
// The device side is an interface (`DeviceBackend`), so the same logic runs on cudaMalloc and
// CUDA events in pleat_cuda and on a simulated device in the CPU addon's tests. Not thread-safe:
// one allocator per rank, called from the rank's thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <set>
#include <unordered_map>
#include <vector>

namespace pleat {
namespace device {

// What the allocator needs from a device. Streams are small integers chosen by the caller.
class DeviceBackend {
 public:
  virtual ~DeviceBackend() = default;
  // Device memory of `bytes`, or nullptr when the device has no room.
  virtual void* allocate(size_t bytes) = 0;
  virtual void release(void* ptr) = 0;
  // An event recorded now on `stream`; done once the work queued before it has run.
  virtual uint64_t record_event(int stream) = 0;
  virtual bool event_done(uint64_t event) = 0;
  virtual void destroy_event(uint64_t event) = 0;
};

struct AllocatorStats {
  size_t allocated_bytes = 0;       // live blocks (rounded sizes)
  size_t reserved_bytes = 0;        // segments held from the device
  size_t peak_allocated_bytes = 0;
  size_t segments = 0;
  size_t device_allocations = 0;    // backend allocate calls that succeeded
  size_t device_releases = 0;
  size_t pending_blocks = 0;        // freed, waiting for other streams' events
};

class CachingAllocator {
 public:
  static constexpr size_t kRound = 512;
  static constexpr size_t kSmallRequest = size_t{1} << 20;
  static constexpr size_t kSmallSegment = size_t{2} << 20;
  static constexpr size_t kLargeRound = size_t{2} << 20;

  explicit CachingAllocator(DeviceBackend& device) : device_(device) {}
  ~CachingAllocator();
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;

  // A block of at least `bytes` (0 counts as 1) for use on `stream`, or nullptr when the device
  // is out of memory even after the cache was released.
  void* allocate(size_t bytes, int stream);
  // Returns a block from `allocate`; false (and nothing changes) for any other pointer.
  bool free(void* ptr);
  // `ptr` is also used on `stream`: its reuse waits for that stream's work at free time.
  bool record_stream(void* ptr, int stream);
  // Releases every segment that holds no live or pending block.
  void empty_cache();
  // The rounded size of a live block, 0 for any other pointer.
  size_t block_size(void* ptr) const;
  AllocatorStats stats() const { return stats_; }

  static size_t round_size(size_t bytes) { return (bytes == 0 ? kRound : (bytes + kRound - 1) / kRound * kRound); }

 private:
  struct Block {
    Block(char* at, size_t bytes, int on_stream, bool is_small) : ptr(at), size(bytes), stream(on_stream), small(is_small) {}
    char* ptr;
    size_t size;
    int stream;
    bool small;
    bool free = false;
    Block* prev = nullptr;  // neighbours in the segment, by address
    Block* next = nullptr;
    std::vector<int> other_streams;
    std::vector<uint64_t> events;
  };
  struct BySizeThenAddress {
    bool operator()(const Block* a, const Block* b) const { return a->size != b->size ? a->size < b->size : a->ptr < b->ptr; }
  };
  using Pool = std::set<Block*, BySizeThenAddress>;

  Pool& pool(int stream, bool small) { return pools_[{stream, small}]; }
  Block* take_free(size_t size, int stream, bool small);
  Block* new_segment(size_t size, int stream, bool small);
  void split(Block* block, size_t size);
  void make_free(Block* block);
  void process_events();
  void release_cached();

  DeviceBackend& device_;
  std::map<std::pair<int, bool>, Pool> pools_;
  std::unordered_map<void*, Block*> live_;
  std::vector<Block*> pending_;
  std::map<char*, Block*> segments_;  // each segment's base address and first block
  AllocatorStats stats_;
};

}  // namespace device
}  // namespace pleat
