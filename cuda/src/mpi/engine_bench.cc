// pleat_mpi_engine_bench: the engine's own figures, the reference of the bench suite `mpi`.
//
// A plain MPI program (the C API only, no pleat code) that times the collectives pleat's MPI
// backend uses, the way the backend calls them, so that bench/suites/mpi.ts can put pleat's
// figures (bench/programs/mpiComm.ts) over the engine's, measured in the same run:
//
//   allToAllV  MPI_Ialltoallv + MPI_Wait, N bytes of float32 to every member (self included)
//   allGather  MPI_Iallgather + MPI_Wait, N bytes of float32 from every member
//   allReduce  MPI_Iallreduce + MPI_Wait of 1 float32 (sum): small-message latency
//   barrier    MPI_Ibarrier + MPI_Wait: the cheapest collective
//
// As in pleat: MPI_Init_thread with MPI_THREAD_MULTIPLE, the non-blocking MPI_I* calls on a
// communicator of all ranks made with MPI_Comm_create_group (not MPI_COMM_WORLD itself), send
// and receive buffers allocated once and reused by every call. What pleat adds on top of these
// calls is its cost: the allgather of signatures before each collective, the hop from the JS
// thread to the engine thread and back, and the engine thread's MPI_Test polling (this
// program waits in MPI_Wait, the best MPI itself offers).
//
// Timing: a repetition is a barrier, then `iterations` collectives timed with MPI_Wtime on
// every rank; the repetition's time is the slowest rank's (MPI_Reduce max), per collective.
// Printed: the median repetition, after `warmup` untimed collectives. One JSON line per
// measurement on rank 0's stdout:
//
//   {"program":"engine","op":"allToAllV","ranks":4,"bytesPerPeer":1048576,"seconds":0.0012,
//    "reps":7,"iterations":4}
//
// bytesPerPeer is 4 for allReduce and 0 for barrier. The result data is checked (every
// member's block holds that member's values); a wrong result exits 1.
//
// Usage: mpirun -np P pleat_mpi_engine_bench [--sizes-mib 1,4,16] [--reps 7] [--latency-reps 9]
//        [--latency-batch 100]
#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

struct Options {
  std::vector<double> sizes_mib{1, 4, 16};
  int reps = 7;
  int latency_reps = 9;
  int latency_batch = 100;
};

bool parse(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; i++) {
    const std::string arg = argv[i];
    if (i + 1 >= argc) return false;
    const char* value = argv[++i];
    if (arg == "--sizes-mib") {
      o.sizes_mib.clear();
      for (const char* p = value; *p != '\0';) {
        char* end = nullptr;
        const double v = std::strtod(p, &end);
        if (end == p || v <= 0) return false;
        o.sizes_mib.push_back(v);
        p = *end == ',' ? end + 1 : end;
      }
    } else if (arg == "--reps") {
      o.reps = std::atoi(value);
    } else if (arg == "--latency-reps") {
      o.latency_reps = std::atoi(value);
    } else if (arg == "--latency-batch") {
      o.latency_batch = std::atoi(value);
    } else {
      return false;
    }
  }
  return o.reps > 0 && o.latency_reps > 0 && o.latency_batch > 0 && !o.sizes_mib.empty();
}

void check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  std::fprintf(stderr, "pleat_mpi_engine_bench: %s failed (MPI error %d)\n", what, rc);
  MPI_Abort(MPI_COMM_WORLD, 1);
}

// Runs one started collective to its end, as a blocking call would.
void wait(MPI_Request& request, const char* what) { check(MPI_Wait(&request, MPI_STATUS_IGNORE), what); }

// Collectives per repetition for a message of `bytes` per peer: about 16 MiB per rank and
// repetition, at least 2 (as bench/programs/mpiComm.ts).
int iterations_for(size_t bytes) { return std::max<int>(2, static_cast<int>((16u << 20) / std::max<size_t>(1, bytes))); }

class Bench {
 public:
  Bench(MPI_Comm comm, int rank, int size) : comm_(comm), rank_(rank), size_(size) {}

  // Median over `reps` of the slowest rank's seconds per call of `once`.
  template <typename F>
  double time(int reps, int iterations, int warmup, F once) {
    for (int i = 0; i < warmup; i++) once();
    std::vector<double> samples;
    for (int r = 0; r < reps; r++) {
      check(MPI_Barrier(comm_), "MPI_Barrier");
      const double started = MPI_Wtime();
      for (int i = 0; i < iterations; i++) once();
      const double mine = (MPI_Wtime() - started) / iterations;
      double slowest = 0;
      check(MPI_Reduce(&mine, &slowest, 1, MPI_DOUBLE, MPI_MAX, 0, comm_), "MPI_Reduce");
      samples.push_back(slowest);
    }
    std::sort(samples.begin(), samples.end());
    return samples[samples.size() / 2];
  }

  void print(const char* op, size_t bytes_per_peer, double seconds, int reps, int iterations) const {
    if (rank_ != 0) return;
    std::printf("{\"program\":\"engine\",\"op\":\"%s\",\"ranks\":%d,\"bytesPerPeer\":%zu,\"seconds\":%.9g,\"reps\":%d,\"iterations\":%d}\n", op, size_,
                bytes_per_peer, seconds, reps, iterations);
    std::fflush(stdout);
  }

  // Every member's block of `received` (floats per block) holds that member's value.
  void verify(const std::vector<float>& received, size_t floats, const char* op) const {
    for (int m = 0; m < size_; m++) {
      const float want = static_cast<float>(m + 1);
      if (received[m * floats] != want || received[m * floats + floats - 1] != want) {
        std::fprintf(stderr, "pleat_mpi_engine_bench: rank %d: %s delivered a wrong block from member %d\n", rank_, op, m);
        MPI_Abort(MPI_COMM_WORLD, 1);
      }
    }
  }

  void bandwidth(size_t bytes, int reps) {
    const size_t floats = bytes / sizeof(float);
    const int count = static_cast<int>(floats);
    // Allocated once, reused by every call; the send data is this rank's value + 1.
    std::vector<float> send(floats * size_, static_cast<float>(rank_ + 1));
    std::vector<float> receive(floats * size_, 0.0f);
    std::vector<int> counts(size_, count), displs(size_);
    for (int m = 0; m < size_; m++) displs[m] = m * count;
    const int iterations = iterations_for(bytes);
    const double a2a = time(reps, iterations, 2, [&] {
      MPI_Request request;
      check(MPI_Ialltoallv(send.data(), counts.data(), displs.data(), MPI_FLOAT, receive.data(), counts.data(), displs.data(), MPI_FLOAT, comm_, &request),
            "MPI_Ialltoallv");
      wait(request, "MPI_Ialltoallv");
    });
    verify(receive, floats, "allToAllV");
    print("allToAllV", bytes, a2a, reps, iterations);
    std::fill(receive.begin(), receive.end(), 0.0f);
    const double gather = time(reps, iterations, 2, [&] {
      MPI_Request request;
      check(MPI_Iallgather(send.data(), count, MPI_FLOAT, receive.data(), count, MPI_FLOAT, comm_, &request), "MPI_Iallgather");
      wait(request, "MPI_Iallgather");
    });
    verify(receive, floats, "allGather");
    print("allGather", bytes, gather, reps, iterations);
  }

  void latency(int reps, int batch) {
    float x = 1.0f, sum = 0.0f;
    const double reduce = time(reps, batch, batch, [&] {
      MPI_Request request;
      check(MPI_Iallreduce(&x, &sum, 1, MPI_FLOAT, MPI_SUM, comm_, &request), "MPI_Iallreduce");
      wait(request, "MPI_Iallreduce");
    });
    if (sum != static_cast<float>(size_)) {
      std::fprintf(stderr, "pleat_mpi_engine_bench: rank %d: allReduce gave %g, not %d\n", rank_, sum, size_);
      MPI_Abort(MPI_COMM_WORLD, 1);
    }
    print("allReduce", sizeof(float), reduce, reps, batch);
    const double barrier = time(reps, batch, batch, [&] {
      MPI_Request request;
      check(MPI_Ibarrier(comm_, &request), "MPI_Ibarrier");
      wait(request, "MPI_Ibarrier");
    });
    print("barrier", 0, barrier, reps, batch);
  }

 private:
  MPI_Comm comm_;
  int rank_;
  int size_;
};

}  // namespace

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  Options options;
  if (!parse(argc, argv, options)) {
    if (rank == 0) std::fprintf(stderr, "usage: pleat_mpi_engine_bench [--sizes-mib 1,4,16] [--reps 7] [--latency-reps 9] [--latency-batch 100]\n");
    MPI_Finalize();
    return 2;
  }
  // A communicator of every rank, made as pleat makes a group's communicator.
  MPI_Group world_group, group;
  MPI_Comm comm;
  MPI_Comm_group(MPI_COMM_WORLD, &world_group);
  std::vector<int> ranks(size);
  for (int r = 0; r < size; r++) ranks[r] = r;
  MPI_Group_incl(world_group, size, ranks.data(), &group);
  check(MPI_Comm_create_group(MPI_COMM_WORLD, group, 0, &comm), "MPI_Comm_create_group");
  MPI_Group_free(&group);
  MPI_Group_free(&world_group);
  Bench bench(comm, rank, size);
  for (const double mib : options.sizes_mib) bench.bandwidth(static_cast<size_t>(mib * (1 << 20)) / sizeof(float) * sizeof(float), options.reps);
  bench.latency(options.latency_reps, options.latency_batch);
  MPI_Comm_free(&comm);
  MPI_Finalize();
  return 0;
}
