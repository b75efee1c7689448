// CachingAllocator (see caching_allocator.h).
#include "caching_allocator.h"

#include <algorithm>

namespace pleat {
namespace device {

CachingAllocator::~CachingAllocator() {
  for (Block* b : pending_) {
    for (uint64_t e : b->events) device_.destroy_event(e);
  }
  // Every segment goes back to the device, live blocks included (those are the caller's leak).
  for (auto& [base, first] : segments_) {
    device_.release(base);
    for (Block* b = first; b != nullptr;) {
      Block* next = b->next;
      delete b;
      b = next;
    }
  }
}

void* CachingAllocator::allocate(size_t bytes, int stream) {
  const size_t size = round_size(bytes);
  const bool small = size <= kSmallRequest;
  process_events();
  Block* b = take_free(size, stream, small);
  if (b == nullptr) b = new_segment(size, stream, small);
  if (b == nullptr) {
    release_cached();
    b = new_segment(size, stream, small);
  }
  if (b == nullptr) return nullptr;
  split(b, size);
  live_[b->ptr] = b;
  stats_.allocated_bytes += b->size;
  stats_.peak_allocated_bytes = std::max(stats_.peak_allocated_bytes, stats_.allocated_bytes);
  return b->ptr;
}

bool CachingAllocator::free(void* ptr) {
  const auto it = live_.find(ptr);
  if (it == live_.end()) return false;
  Block* b = it->second;
  live_.erase(it);
  stats_.allocated_bytes -= b->size;
  if (b->other_streams.empty()) {
    make_free(b);
    return true;
  }
  for (int s : b->other_streams) b->events.push_back(device_.record_event(s));
  b->other_streams.clear();
  pending_.push_back(b);
  stats_.pending_blocks = pending_.size();
  return true;
}

bool CachingAllocator::record_stream(void* ptr, int stream) {
  const auto it = live_.find(ptr);
  if (it == live_.end()) return false;
  Block* b = it->second;
  if (stream != b->stream && std::find(b->other_streams.begin(), b->other_streams.end(), stream) == b->other_streams.end()) {
    b->other_streams.push_back(stream);
  }
  return true;
}

void CachingAllocator::empty_cache() { release_cached(); }

size_t CachingAllocator::block_size(void* ptr) const {
  const auto it = live_.find(ptr);
  return it == live_.end() ? 0 : it->second->size;
}

CachingAllocator::Block* CachingAllocator::take_free(size_t size, int stream, bool small) {
  Pool& p = pool(stream, small);
  Block probe(nullptr, size, stream, small);
  const auto it = p.lower_bound(&probe);  // the smallest that fits, lowest address first
  if (it == p.end()) return nullptr;
  Block* b = *it;
  p.erase(it);
  b->free = false;  // before split: its tail must not merge back into it
  return b;
}

CachingAllocator::Block* CachingAllocator::new_segment(size_t size, int stream, bool small) {
  const size_t bytes = small ? kSmallSegment : (size + kLargeRound - 1) / kLargeRound * kLargeRound;
  char* ptr = static_cast<char*>(device_.allocate(bytes));
  if (ptr == nullptr) return nullptr;
  Block* b = new Block(ptr, bytes, stream, small);
  segments_[ptr] = b;
  stats_.reserved_bytes += bytes;
  stats_.segments = segments_.size();
  ++stats_.device_allocations;
  return b;
}

// Cuts `block` (out of every pool) to `size` when the rest is worth keeping; the rest is freed.
void CachingAllocator::split(Block* block, size_t size) {
  const size_t rest = block->size - size;
  const bool worth = block->small ? rest >= kRound : rest > kSmallRequest;
  if (!worth) return;
  Block* tail = new Block(block->ptr + size, rest, block->stream, block->small);
  tail->prev = block;
  tail->next = block->next;
  if (block->next != nullptr) block->next->prev = tail;
  block->next = tail;
  block->size = size;
  make_free(tail);
}

// Marks `block` free, merges it with free neighbours (the lower address survives) and pools it.
void CachingAllocator::make_free(Block* block) {
  block->free = true;
  Pool& p = pool(block->stream, block->small);
  if (Block* next = block->next; next != nullptr && next->free) {
    p.erase(next);
    block->size += next->size;
    block->next = next->next;
    if (block->next != nullptr) block->next->prev = block;
    delete next;
  }
  if (Block* prev = block->prev; prev != nullptr && prev->free) {
    p.erase(prev);
    prev->size += block->size;
    prev->next = block->next;
    if (prev->next != nullptr) prev->next->prev = prev;
    delete block;
    block = prev;
  }
  p.insert(block);
}

void CachingAllocator::process_events() {
  size_t kept = 0;
  for (Block* b : pending_) {
    const bool done = std::all_of(b->events.begin(), b->events.end(), [&](uint64_t e) { return device_.event_done(e); });
    if (!done) {
      pending_[kept++] = b;
      continue;
    }
    for (uint64_t e : b->events) device_.destroy_event(e);
    b->events.clear();
    make_free(b);
  }
  pending_.resize(kept);
  stats_.pending_blocks = kept;
}

void CachingAllocator::release_cached() {
  process_events();
  for (auto it = segments_.begin(); it != segments_.end();) {
    Block* first = it->second;
    if (!first->free || first->next != nullptr) {
      ++it;
      continue;
    }
    pool(first->stream, first->small).erase(first);
    device_.release(first->ptr);
    stats_.reserved_bytes -= first->size;
    ++stats_.device_releases;
    delete first;
    it = segments_.erase(it);
  }
  stats_.segments = segments_.size();
}

}  // namespace device
}  // namespace pleat
