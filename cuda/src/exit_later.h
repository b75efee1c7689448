// exit_later: ends this process with `code` after `delay` unless it has ended by then, from a
// detached thread (_exit: no destructors or exit handlers run, so nothing can hold it up). For an
// end that may never come: Node's exit joining a worker thread held by a kernel (signal_net), an
// MPI_Abort that neither ends the process nor returns (mpi/engine.cc). `message`, when given, goes
// to stderr first. False when the thread cannot start.
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <system_error>
#include <thread>

namespace pleat {

inline bool exit_later(int code, std::chrono::milliseconds delay, const std::string& message = "") {
  try {
    std::thread([code, delay, message] {
      std::this_thread::sleep_for(delay);
      if (!message.empty()) std::fputs(message.c_str(), stderr);
      _exit(code);
    }).detach();
    return true;
  } catch (const std::system_error&) {
    return false;
  }
}

}  // namespace pleat
