// SimulatedDeviceAllocator: the device caching allocator (device/caching_allocator.h) over a
// simulated device with a fixed capacity, for tests on machines without a GPU.
//
//   new SimulatedDeviceAllocator(capacityBytes)
//   .allocate(bytes, stream) -> address (a number, never dereferenced) or null when out of memory
//   .free(address) -> boolean          .recordStream(address, stream) -> boolean
//   .completeStream(stream)            marks every event recorded on `stream` so far as done
//   .emptyCache()                      .blockSize(address) -> number (0: not a live block)
//   .stats() -> { allocatedBytes, reservedBytes, peakAllocatedBytes, segments, deviceAllocations,
//                 deviceReleases, pendingBlocks, deviceUsedBytes, liveEvents }
// The simulated device hands out addresses from 1 MiB up with a 4 KiB gap between segments, so
// any overlap or out-of-segment block shows in the addresses.
#include "device_allocator_binding.h"

#include <cstdint>
#include <unordered_map>

#include "device/caching_allocator.h"
#include "device/stats_object.h"
#include "napi_args.h"

namespace pleat {

namespace {

class SimulatedDevice : public device::DeviceBackend {
 public:
  explicit SimulatedDevice(size_t capacity) : capacity_(capacity) {}

  void* allocate(size_t bytes) override {
    if (bytes > capacity_ - used_) return nullptr;
    const uintptr_t at = next_;
    next_ += bytes + 4096;
    used_ += bytes;
    segments_[at] = bytes;
    return reinterpret_cast<void*>(at);
  }
  void release(void* ptr) override {
    const auto it = segments_.find(reinterpret_cast<uintptr_t>(ptr));
    if (it == segments_.end()) return;
    used_ -= it->second;
    segments_.erase(it);
  }
  uint64_t record_event(int stream) override {
    events_[next_event_] = Event{stream, false};
    return next_event_++;
  }
  bool event_done(uint64_t event) override {
    const auto it = events_.find(event);
    return it != events_.end() && it->second.done;
  }
  void destroy_event(uint64_t event) override { events_.erase(event); }

  void complete(int stream) {
    for (auto& [id, e] : events_) {
      if (e.stream == stream) e.done = true;
    }
  }
  size_t used() const { return used_; }
  size_t live_events() const { return events_.size(); }

 private:
  struct Event {
    int stream;
    bool done;
  };
  size_t capacity_;
  size_t used_ = 0;
  uintptr_t next_ = uintptr_t{1} << 20;
  uint64_t next_event_ = 1;
  std::unordered_map<uintptr_t, size_t> segments_;
  std::unordered_map<uint64_t, Event> events_;
};

class SimulatedDeviceAllocator : public Napi::ObjectWrap<SimulatedDeviceAllocator> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "SimulatedDeviceAllocator",
                       {InstanceMethod("allocate", &SimulatedDeviceAllocator::Allocate),
                        InstanceMethod("free", &SimulatedDeviceAllocator::Free),
                        InstanceMethod("recordStream", &SimulatedDeviceAllocator::RecordStream),
                        InstanceMethod("completeStream", &SimulatedDeviceAllocator::CompleteStream),
                        InstanceMethod("emptyCache", &SimulatedDeviceAllocator::EmptyCache),
                        InstanceMethod("blockSize", &SimulatedDeviceAllocator::BlockSize),
                        InstanceMethod("stats", &SimulatedDeviceAllocator::Stats)});
  }

  explicit SimulatedDeviceAllocator(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<SimulatedDeviceAllocator>(info), device_(Capacity(info)), allocator_(device_) {}

 private:
  static size_t Capacity(const Napi::CallbackInfo& info) {
    if (info.Length() < 1 || !info[0].IsNumber() || info[0].As<Napi::Number>().DoubleValue() < 0) {
      Napi::TypeError::New(info.Env(), "SimulatedDeviceAllocator: capacityBytes must be a number >= 0").ThrowAsJavaScriptException();
      return 0;
    }
    return static_cast<size_t>(info[0].As<Napi::Number>().DoubleValue());
  }

  // The name argument errors start with ("SimulatedDeviceAllocator: bytes must be ...").
  static constexpr const char* kFn = "SimulatedDeviceAllocator";

  static void* Address(double v) { return reinterpret_cast<void*>(static_cast<uintptr_t>(v)); }

  Napi::Value Allocate(const Napi::CallbackInfo& info) {
    double bytes = 0, stream = 0;
    if (!expect_whole(info, kFn, 0, "bytes", &bytes) || !expect_whole(info, kFn, 1, "stream", &stream)) return info.Env().Undefined();
    void* p = allocator_.allocate(static_cast<size_t>(bytes), static_cast<int>(stream));
    if (p == nullptr) return info.Env().Null();
    return Napi::Number::New(info.Env(), static_cast<double>(reinterpret_cast<uintptr_t>(p)));
  }
  Napi::Value Free(const Napi::CallbackInfo& info) {
    double at = 0;
    if (!expect_whole(info, kFn, 0, "address", &at)) return info.Env().Undefined();
    return Napi::Boolean::New(info.Env(), allocator_.free(Address(at)));
  }
  Napi::Value RecordStream(const Napi::CallbackInfo& info) {
    double at = 0, stream = 0;
    if (!expect_whole(info, kFn, 0, "address", &at) || !expect_whole(info, kFn, 1, "stream", &stream)) return info.Env().Undefined();
    return Napi::Boolean::New(info.Env(), allocator_.record_stream(Address(at), static_cast<int>(stream)));
  }
  Napi::Value CompleteStream(const Napi::CallbackInfo& info) {
    double stream = 0;
    if (!expect_whole(info, kFn, 0, "stream", &stream)) return info.Env().Undefined();
    device_.complete(static_cast<int>(stream));
    return info.Env().Undefined();
  }
  Napi::Value EmptyCache(const Napi::CallbackInfo& info) {
    allocator_.empty_cache();
    return info.Env().Undefined();
  }
  Napi::Value BlockSize(const Napi::CallbackInfo& info) {
    double at = 0;
    if (!expect_whole(info, kFn, 0, "address", &at)) return info.Env().Undefined();
    return Napi::Number::New(info.Env(), static_cast<double>(allocator_.block_size(Address(at))));
  }
  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Object o = device::stats_object(info.Env(), allocator_.stats());
    o.Set("deviceUsedBytes", Napi::Number::New(info.Env(), static_cast<double>(device_.used())));
    o.Set("liveEvents", Napi::Number::New(info.Env(), static_cast<double>(device_.live_events())));
    return o;
  }

  SimulatedDevice device_;
  device::CachingAllocator allocator_;
};

}  // namespace

void RegisterDeviceAllocatorExports(Napi::Env env, Napi::Object exports) {
  exports.Set("SimulatedDeviceAllocator", SimulatedDeviceAllocator::Define(env));
}

}  // namespace pleat
