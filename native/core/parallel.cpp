#include "parallel.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace gs {
namespace {

thread_local bool inside_pool_body = false;

class Pool {
public:
    static Pool& instance() {
        // Leaked on purpose: joining threads from a static destructor at JVM exit can deadlock.
        static Pool* pool = new Pool(default_threads());
        return *pool;
    }

    int threads() {
        std::lock_guard<std::mutex> job_lock(job_mutex_);
        return int(workers_.size()) + 1;
    }

    void resize(int n) {
        std::lock_guard<std::mutex> job_lock(job_mutex_);
        const int before = int(workers_.size()) + 1;
        stop_workers();
        try {
            start_workers(n <= 0 ? default_threads() : n);
        } catch (...) {
            // Thread creation failed part way (a process thread limit): leave no extra threads behind
            // and keep the pool as it was, then report the failure.
            stop_workers();
            start_workers(before);
            throw;
        }
    }

    // Runs task(t) for t in [0, tasks) on the pool and the calling thread.
    void run(int64_t tasks, const std::function<void(int64_t)>& task) {
        std::lock_guard<std::mutex> job_lock(job_mutex_);
        {
            std::lock_guard<std::mutex> lock(mutex_);
            task_ = &task;
            task_count_ = tasks;
            next_task_.store(0);
            busy_workers_ = int(workers_.size());
            error_ = nullptr;
            ++generation_;
        }
        wake_.notify_all();
        work();
        std::unique_lock<std::mutex> lock(mutex_);
        done_.wait(lock, [&] { return busy_workers_ == 0; });
        task_ = nullptr;
        if (error_) std::rethrow_exception(error_);
    }

private:
    explicit Pool(int n) { start_workers(n); }

    static int default_threads() {
        unsigned hw = std::thread::hardware_concurrency();
        return hw == 0 ? 1 : int(hw);
    }

    void start_workers(int n) {
        uint64_t current;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            quit_ = false;
            current = generation_;
        }
        // A worker must wait for the NEXT job: started at generation 0 after earlier jobs, it would
        // take a finished job for a new one and count itself done twice, and run() could wait forever.
        for (int i = 1; i < n; ++i) workers_.emplace_back([this, current] { worker_loop(current); });
    }

    void stop_workers() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            quit_ = true;
        }
        wake_.notify_all();
        for (auto& w : workers_) w.join();
        workers_.clear();
    }

    // Takes tasks until none are left; records the first exception.
    void work() {
        inside_pool_body = true;
        for (;;) {
            int64_t t = next_task_.fetch_add(1);
            if (t >= task_count_) break;
            try {
                (*task_)(t);
            } catch (...) {
                std::lock_guard<std::mutex> lock(mutex_);
                if (!error_) error_ = std::current_exception();
            }
        }
        inside_pool_body = false;
    }

    void worker_loop(uint64_t seen) {
        for (;;) {
            {
                std::unique_lock<std::mutex> lock(mutex_);
                wake_.wait(lock, [&] { return quit_ || generation_ != seen; });
                if (quit_) return;
                seen = generation_;
            }
            work();
            {
                std::lock_guard<std::mutex> lock(mutex_);
                if (--busy_workers_ == 0) done_.notify_one();
            }
        }
    }

    std::mutex job_mutex_;  // one job at a time
    std::mutex mutex_;      // guards the fields below
    std::condition_variable wake_, done_;
    std::vector<std::thread> workers_;
    const std::function<void(int64_t)>* task_ = nullptr;
    int64_t task_count_ = 0;
    std::atomic<int64_t> next_task_{0};
    int busy_workers_ = 0;
    uint64_t generation_ = 0;
    bool quit_ = false;
    std::exception_ptr error_;
};

}  // namespace

int thread_count() { return Pool::instance().threads(); }

void set_thread_count(int n) { Pool::instance().resize(n); }

void parallel_tasks(int64_t tasks, const std::function<void(int64_t)>& body) {
    if (tasks <= 0) return;
    if (tasks == 1 || inside_pool_body) {
        for (int64_t t = 0; t < tasks; ++t) body(t);
        return;
    }
    Pool::instance().run(tasks, body);
}

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& body) {
    if (n <= 0) return;
    grain = std::max<int64_t>(grain, 1);
    int64_t ranges = std::min<int64_t>((n + grain - 1) / grain, thread_count());
    if (ranges <= 1 || inside_pool_body) {
        body(0, n);
        return;
    }
    // Equal contiguous ranges: the kernels are streaming loops of uniform cost per item.
    parallel_tasks(ranges, [&](int64_t r) {
        int64_t begin = n * r / ranges, end = n * (r + 1) / ranges;
        if (begin < end) body(begin, end);
    });
}

}  // namespace gs
