// A small persistent thread pool for the CPU kernels. The JVM owns the process, so the pool never
// exits it, never prints, and lets no exception escape: a body's exception is rethrown on the
// calling thread, where gs::guarded turns it into a status.
#pragma once

#include <cstdint>
#include <functional>

namespace gs {

// Threads the CPU kernels use, the calling thread included (>= 1).
int thread_count();
// n <= 0: one per hardware thread.
void set_thread_count(int n);

// Splits [0, n) into contiguous ranges of at least `grain` items (at most one range per thread
// unless `grain` asks for more) and runs body(begin, end) on each, the caller taking a share.
// Returns when all ranges are done. Calls from inside a body run serially on that thread; calls
// from several JVM threads at once take turns.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& body);

// Runs body(task) for task in [0, tasks), each on one thread; tasks are handed out dynamically.
// For work that keeps one private table per task (histograms) and merges afterwards.
void parallel_tasks(int64_t tasks, const std::function<void(int64_t)>& body);

}  // namespace gs
