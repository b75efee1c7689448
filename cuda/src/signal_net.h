// signal_net: the process's last word on SIGINT and SIGTERM when its main thread cannot answer.
//
// `pleat` handles these signals in JavaScript (src/cli/RunMain.ts): the job is interrupted, its
// finalizers run, one line says what was interrupted, and the process exits 128 + the signal
// within a few seconds. JavaScript only runs between native calls, though, so a main thread inside
// one long kernel (an attention over a million positions runs for minutes) never sees the signal:
// the process went on until SIGKILL. While armed, this net chains a handler in front of Node's
// (libuv's) for each signal, and a watchdog thread ends the process itself, with the same kind of
// line and status, when JavaScript has not ended it in time:
//   - a first signal that JavaScript has not acknowledged (`seen`) within the grace: the main
//     thread is stuck, so the process ends at the grace;
//   - after an acknowledgement, JavaScript's own timer ends the run at the grace; should a native
//     call hold the thread then, the net ends it one second later;
//   - a further signal (the user's second Ctrl-C) ends the process 0.3 s after it unless
//     JavaScript disarmed first (it ends the run at once itself when it can).
// The signal handler does only async-signal-safe work (atomics, clock_gettime, sem_post) before
// calling the handler it displaced.
#pragma once

#include <string>
#include <vector>

namespace pleat {
namespace signal_net {

// Installs the net for `signals` whose current action is a handler (Node listens to them), with
// `prefix` starting the line (`pleat train: interrupted by `) and `grace_ms`; returns the signals
// it now watches. Arming again resets the state and keeps handlers already installed.
std::vector<int> arm(const std::string& prefix, int grace_ms, const std::vector<int>& signals);

// JavaScript's handler ran: the main thread is alive; the deadline moves to grace + 1 s from now.
void seen();

// What the command is doing now, in words (follows the signal's name in the line).
void describe(const std::string& text);

// Stands the net down and gives each signal back to the handler it displaced, where the net's
// handler is still the installed one.
void disarm();

}  // namespace signal_net
}  // namespace pleat
