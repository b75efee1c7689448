// pool_probe: which threads run a job's tasks. Each task sleeps (so the probe needs no cores of
// its own) and notes its thread: the property that the pool spreads its threads over callers in
// kernels at once (properties/runtime/PoolSpread.test.ts) reads it from several threads together.
#pragma once

namespace pleat {

struct PoolProbeResult {
  unsigned threads;  // distinct threads that ran a task, the caller's included
  unsigned runs;     // tasks run (each task once: `tasks`)
  unsigned peak;     // the most of the job's tasks running at once
};

// Runs `tasks` tasks of `micros` microseconds' sleep each through pool_run.
PoolProbeResult pool_probe(unsigned tasks, unsigned micros);

}  // namespace pleat
