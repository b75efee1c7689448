// The MPI engine of pleat_mpi.node: one native thread that owns MPI.
//
// The thread calls MPI_Init_thread, then serves commands that the JS thread queues (start a
// non-blocking collective or send, create or free a communicator) and progresses what is in
// flight with MPI_Test; it also probes the p2p communicator for incoming messages
// (MPI_Improbe + MPI_Imrecv), so a message is received whenever it arrives, not only when the
// receiver asks. Each finished op and each received message becomes a Completion handed to
// `deliver` (the binding turns it into a call on the JS thread through a thread-safe
// function). Nothing here blocks the JS thread except start() (MPI_Init) and stop().
//
// Communicators are created on a thread of their own (MPI_Comm_create_group blocks until every
// member calls it, and a member that never does must not stop this thread from progressing
// everything else); ops on a communicator still being made wait for it, in order.
//
// Idle policy: for PLEAT_MPI_SPIN_US (default 1000 us) after the last progress the thread
// polls, yielding its core between polls; then it sleeps in growing steps, up to 50 us while
// ops are in flight or JS waits for a p2p message, else up to 500 us (a message nobody waits for
// yet may wait that long). A new command wakes it at once.
#pragma once

#include <mpi.h>

#include "message_bytes.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace pleat::mpi {

enum class Kind { Checked, CommCreate, CommReady, CommFree, AllGather, AllGatherV, AllReduce, ReduceScatter, AllToAllV, Bcast, Barrier, Send };

// One command from JS. Buffers are owned by JS, which keeps them alive until the completion.
struct Command {
  uint32_t id = 0;
  Kind kind = Kind::Barrier;
  int comm = -1;  // pleat's communicator id (CommCreate: the id to give the new one)
  std::vector<int> ranks;  // CommCreate: members as world ranks, in group order
  int tag = 0;    // CommCreate: the creation tag; Send: the MPI tag
  MPI_Comm made = MPI_COMM_NULL;  // CommReady: the communicator a creator thread made
  int rc = 0;     // CommReady: MPI_Comm_create_group's result
  int dest = 0;   // Send: the world rank
  int root = 0;   // Bcast: group-local root
  MPI_Datatype type = MPI_BYTE;
  MPI_Op op = MPI_SUM;
  void* send = nullptr;
  void* recv = nullptr;
  int count = 0;  // elements: AllGather / AllReduce / Bcast per call
  size_t bytes = 0;  // Send: the message's length (any: message_bytes.h)
  std::vector<int> send_counts, send_displs, recv_counts, recv_displs;  // elements
  // Checked: an allgather of the members' signature rows (`header_length` doubles each), then,
  // when every row is equal but for the receive-buffer fields and says "fast", the data op
  // `then` (AllReduce, AllGather or ReduceScatter) on the same ids and buffers.
  Kind then = Kind::Barrier;
  double* header = nullptr;
  double* headers = nullptr;
  int header_length = 0;
};

// The fields of a signature row that may differ between members that agree (the receive
// buffer's length and dtype: each member checked its own), and the "fast" flag's position
// (Header.ts owns the layout; these mirror it).
constexpr int kBufferLength = 13;
constexpr int kBufferType = 14;
constexpr int kFast = 16;

// A finished op (message == false) or a received p2p message (message == true).
struct Completion {
  bool message = false;
  uint32_t id = 0;
  int status = 0;  // 0 on success, else the MPI error class
  std::string error;
  bool fast = false;  // Checked: the data op ran too (else only the signatures were gathered)
  int source = 0;
  int tag = 0;
  std::vector<uint8_t> bytes;
};

struct WorldInfo {
  int rank = 0;
  int size = 1;
  int provided = 0;
  std::string error;  // non-empty when MPI_Init_thread failed
};

class Engine {
 public:
  explicit Engine(std::function<void(Completion*)> deliver) : deliver_(std::move(deliver)) {}
  ~Engine();

  // Starts the thread and waits for MPI_Init_thread.
  WorldInfo start();
  void submit(Command command);
  // Ends the thread: waits (up to `grace_ms`) for what is in flight, frees the
  // communicators and calls MPI_Finalize. With `abort_code` >= 0 it calls MPI_Abort instead.
  void stop(int abort_code, int grace_ms);
  bool running() const { return running_; }
  // How many receives JS is waiting for: while any, the thread sleeps at most 50 us between probes.
  void want(int waiting) { wanted_ = waiting; }

 private:
  struct Active {
    MPI_Request request = MPI_REQUEST_NULL;
    uint32_t id = 0;
    std::shared_ptr<Command> checked;  // a Checked op still gathering signatures
    bool fast = false;                 // a Checked op running its data op
    int error = MPI_SUCCESS;           // a received message whose receive failed
    bool message = false;
    int source = 0;
    int tag = 0;
    std::vector<uint8_t> bytes;
  };

  void loop();
  void begin(Command& command);
  void finish(uint32_t id, int code, bool fast = false);
  int start_data(const Command& cmd, MPI_Request* request);
  bool agreed(const Command& cmd) const;
  void fail(uint32_t id, int code, const std::string& what);
  void probe();
  void deliver_inbound();
  void poll();
  void idle(unsigned rounds);
  MPI_Comm comm_of(int id) const;

  std::function<void(Completion*)> deliver_;
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable ready_cv_;
  std::condition_variable ended_cv_;
  bool ended_ = false;
  std::deque<Command> commands_;
  bool ready_ = false;
  bool stopping_ = false;
  bool running_ = false;
  int abort_code_ = -1;
  long spin_us_ = 1000;
  size_t message_bytes_ = 0;  // the largest block of a p2p message (message_bytes.h)
  std::chrono::steady_clock::time_point idle_since_{};
  int grace_ms_ = 0;
  WorldInfo world_;
  MPI_Comm p2p_ = MPI_COMM_NULL;
  std::unordered_map<int, MPI_Comm> comms_;
  std::unordered_map<int, std::deque<Command>> creating_;
  std::atomic<int> creators_{0};
  std::atomic<int> wanted_{0};
  std::deque<Active> active_;
  std::deque<Active> inbound_;  // received messages in the order MPI matched them
};

// The MPI library's own version string (callable before MPI_Init).
std::string library_version();

}  // namespace pleat::mpi
