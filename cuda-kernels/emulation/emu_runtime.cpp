// The engine behind cuda_runtime.h: launches (blocks in order, a block's threads as fibers or OS
// threads), barriers, warp exchanges, and the runtime calls (devices, memory, copies, errors).
// Streams are executed in issue order at the call (every call is complete when it returns), which
// is one legal schedule of a CUDA stream; the stream of every operation is counted so that tests can
// see which stream host code used.
#include <pthread.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "cuda_runtime.h"
#include "emulation.h"

namespace gs_emu {

thread_local ThreadState* current = nullptr;
uint3 block_idx;
dim3 block_dim, grid_dim;

void fail(const char* what) {
    std::fprintf(stderr, "gs_emu: %s (block %u,%u,%u thread %u,%u,%u)\n", what, block_idx.x, block_idx.y, block_idx.z,
                 current ? current->thread_idx.x : 0u, current ? current->thread_idx.y : 0u,
                 current ? current->thread_idx.z : 0u);
    std::fflush(stderr);
    std::abort();
}

namespace {

// ---- State of the emulated devices ---------------------------------------------------------------

constexpr size_t kDeviceMemory = size_t(8) << 30;  // reported total; allocations are host memory
constexpr int kDefaultSmemLimit = 48 * 1024;       // dynamic shared memory without the opt-in

std::mutex state_mutex;  // everything below except the thread-locals
gs_emu_limits limits[GS_EMU_DEVICES];
bool limits_ready = false;
struct Allocation {
    size_t bytes;
    int device;
};
std::map<const void*, Allocation> allocations;
int64_t live_bytes = 0;
int fail_mallocs = 0;
std::map<std::pair<int, const void*>, int> dynamic_smem_limit;  // (device, kernel) -> bytes
gs_emu_counters counters{};
bool fiber_mode = true;

thread_local int current_device = 0;
thread_local cudaError_t last_error = cudaSuccess;

void ensure_defaults() {  // under state_mutex
    if (limits_ready) return;
    for (auto& l : limits) l = gs_emu_limits{4, 232448, 233472, 32, 0};  // H100 SXM shared memory
    limits_ready = true;
}

cudaError_t record(cudaError_t e) {
    if (e != cudaSuccess) last_error = e;
    return e;
}

void count_stream(cudaStream_t s) {
    std::lock_guard<std::mutex> lock(state_mutex);
    (s == nullptr ? counters.legacy_stream_operations : counters.stream_operations) += 1;
}

// ---- Barriers ------------------------------------------------------------------------------------

struct Fiber;
thread_local Fiber* running_fiber = nullptr;
void yield_fiber();

// A barrier of `expected` threads. Threads mode: mutex and condition variable (ThreadSanitizer sees
// the ordering); fibers: a counter and a generation, waiting fibers yield to the scheduler.
struct Barrier {
    std::mutex m;
    std::condition_variable cv;
    int expected = 0, arrived = 0;
    unsigned long generation = 0;
    int and_value = 1, and_result = 1;

    void reset(int n) {
        expected = n;
        arrived = 0;
        and_value = 1;
    }

    // Returns the AND of every thread's predicate.
    int arrive(int predicate, const char* what);
    // A thread of the block exited: it no longer takes part (as on the GPU).
    void leave();
};

struct Fiber {
    void* sp = nullptr;  // saved stack pointer while switched out
    Barrier* waiting = nullptr;
    unsigned long wait_generation = 0;
    bool done = false;
    const char* where = "";
};

int Barrier::arrive(int predicate, const char* what) {
    if (fiber_mode) {
        and_value &= predicate != 0;
        if (++arrived == expected) {
            and_result = and_value;
            arrived = 0;
            and_value = 1;
            ++generation;
            return and_result;
        }
        running_fiber->waiting = this;
        running_fiber->wait_generation = generation;
        running_fiber->where = what;
        yield_fiber();
        return and_result;
    }
    std::unique_lock<std::mutex> lock(m);
    and_value &= predicate != 0;
    if (++arrived == expected) {
        and_result = and_value;
        arrived = 0;
        and_value = 1;
        ++generation;
        cv.notify_all();
        return and_result;
    }
    const unsigned long g = generation;
    // A GPU would hang; a test must fail instead. No correct kernel here waits a minute at a barrier.
    if (!cv.wait_for(lock, std::chrono::seconds(120), [&] { return generation != g; })) {
        lock.unlock();
        fail(what);
    }
    return and_result;
}

void Barrier::leave() {
    if (fiber_mode) {
        --expected;
        if (arrived > 0 && arrived == expected) {
            and_result = and_value;
            arrived = 0;
            and_value = 1;
            ++generation;
        }
        return;
    }
    std::lock_guard<std::mutex> lock(m);
    --expected;
    if (arrived > 0 && arrived == expected) {
        and_result = and_value;
        arrived = 0;
        and_value = 1;
        ++generation;
        cv.notify_all();
    }
}

// ---- One launch ----------------------------------------------------------------------------------

struct Launch {
    int threads = 0;
    std::vector<ThreadState> state;
    Barrier block_barrier;
    std::vector<Barrier> warp_barrier;
    // Warp exchange: two buffers per warp, used alternately (see warp_exchange).
    std::vector<uint64_t> slots;        // [warp][2][32]
    std::vector<unsigned> exchanges;    // per thread: exchanges done (parity selects the buffer)
    std::vector<uint64_t> results;      // per thread: the 32 values of its last exchange
    void* smem = nullptr;
    size_t smem_bytes = 0;
    void (*body)(void*) = nullptr;
    void* closure = nullptr;
};

Launch* active = nullptr;  // launches do not overlap (every call completes before returning)
std::mutex launch_mutex;   // one launch at a time, whichever host thread issues it

void run_thread(Launch& l, int t) {
    current = &l.state[t];
    l.body(l.closure);
    // An exited thread no longer takes part in __syncthreads (as on sm_70+).
    l.block_barrier.leave();
    current = nullptr;
}

// ---- Fibers --------------------------------------------------------------------------------------

// A stack switch that saves only what the x86-64 SysV ABI makes callee-saved (rbp, rbx, r12-r15,
// the SSE control word and the x87 control word). swapcontext would also save the signal mask with
// a system call on every switch, which made it half of the emulation's run time.
extern "C" void gs_emu_switch(void** save_sp, void* load_sp);
asm(R"(
    .text
    .p2align 4
    .type gs_emu_switch, @function
gs_emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size gs_emu_switch, .-gs_emu_switch
)");

thread_local void* scheduler_sp = nullptr;
constexpr size_t kFiberStack = 256 * 1024;

void yield_fiber() {
    Fiber* f = running_fiber;
    gs_emu_switch(&f->sp, scheduler_sp);
}

struct FiberStart {
    Launch* launch;
    int thread;
    Fiber* fiber;
};
thread_local FiberStart* starting = nullptr;

// First code on a fiber's stack (reached by gs_emu_switch's ret); never returns: a finished fiber
// switches to the scheduler for good.
[[noreturn]] void fiber_entry() {
    FiberStart* s = starting;
    run_thread(*s->launch, s->thread);
    s->fiber->done = true;
    void* unused = nullptr;
    gs_emu_switch(&unused, scheduler_sp);
    __builtin_unreachable();
}

// A fresh stack laid out as gs_emu_switch leaves a switched-out one: control words, six registers,
// then the return address fiber_entry. After the ret, rsp is 8 mod 16, as at any function entry.
void* initial_stack(char* base, size_t size) {
    auto top = reinterpret_cast<uintptr_t>(base + size) & ~uintptr_t(15);
    auto* sp = reinterpret_cast<uint64_t*>(top);
    *--sp = 0;  // alignment slot: fiber_entry starts with rsp = top - 8
    *--sp = reinterpret_cast<uint64_t>(&fiber_entry);
    for (int r = 0; r < 6; ++r) *--sp = 0;  // rbp, rbx, r12-r15
    *--sp = uint64_t(0x037F) << 32 | 0x1F80;  // x87 control word (high half), MXCSR (low half): defaults
    return sp;
}

void run_block_fibers(Launch& l, std::vector<Fiber>& fibers, char* stacks, std::vector<FiberStart>& starts) {
    for (int t = 0; t < l.threads; ++t) {
        Fiber& f = fibers[t];
        f.done = false;
        f.waiting = nullptr;
        f.sp = initial_stack(stacks + size_t(t) * kFiberStack, kFiberStack);
        starts[t] = FiberStart{&l, t, &f};
    }
    std::vector<bool> started(size_t(l.threads), false);
    int remaining = l.threads;
    while (remaining > 0) {
        bool progress = false;
        for (int t = 0; t < l.threads; ++t) {
            Fiber& f = fibers[t];
            if (f.done || (f.waiting != nullptr && f.waiting->generation == f.wait_generation)) continue;
            f.waiting = nullptr;
            running_fiber = &f;
            current = &l.state[t];
            if (!started[t]) {
                started[t] = true;
                starting = &starts[t];
            }
            gs_emu_switch(&scheduler_sp, f.sp);
            running_fiber = nullptr;
            progress = true;
            if (f.done) --remaining;
        }
        if (!progress) {
            for (int t = 0; t < l.threads; ++t) {
                if (!fibers[t].done) {
                    current = &l.state[t];
                    std::string what = std::string("deadlock: every thread left waits at a barrier, e.g. ") + fibers[t].where;
                    fail(what.c_str());
                }
            }
        }
    }
    current = nullptr;
}

// ---- OS threads ----------------------------------------------------------------------------------

struct Pool {
    Launch* launch = nullptr;
    std::mutex m;
    std::condition_variable cv;
    unsigned long block_generation = 0;
    int finished = 0;
    bool stop = false;
};

struct WorkerArg {
    Pool* pool;
    int thread;
};

void* worker(void* p) {
    auto* a = static_cast<WorkerArg*>(p);
    Pool& pool = *a->pool;
    unsigned long seen = 0;
    for (;;) {
        {
            std::unique_lock<std::mutex> lock(pool.m);
            pool.cv.wait(lock, [&] { return pool.stop || pool.block_generation != seen; });
            if (pool.stop) return nullptr;
            seen = pool.block_generation;
        }
        run_thread(*pool.launch, a->thread);
        std::lock_guard<std::mutex> lock(pool.m);
        if (++pool.finished == pool.launch->threads) pool.cv.notify_all();
    }
}

}  // namespace

void sync_block() { active->block_barrier.arrive(1, "__syncthreads"); }

int sync_block_and(int predicate) { return active->block_barrier.arrive(predicate, "__syncthreads_and"); }

// Each lane writes its value into the warp's buffer of this exchange's parity, the lanes meet at the
// warp barrier, and each copies all 32 out. A buffer is written again only two exchanges later, which
// no lane can reach before every lane has passed the exchange in between, so one barrier suffices.
const uint64_t* warp_exchange(unsigned mask, uint64_t value) {
    Launch& l = *active;
    if (mask != 0xffffffffu) fail("warp operation with a partial mask (the emulation supports full warps only)");
    if (l.threads % 32 != 0) fail("warp operation in a block whose size is not a multiple of 32");
    const int t = current->linear, warp = t / 32, lane = t % 32;
    const unsigned parity = l.exchanges[t]++ & 1u;
    uint64_t* buffer = &l.slots[(size_t(warp) * 2 + parity) * 32];
    buffer[lane] = value;
    l.warp_barrier[warp].arrive(1, "a warp operation");
    uint64_t* out = &l.results[size_t(t) * 32];
    std::memcpy(out, buffer, 32 * sizeof(uint64_t));
    return out;
}

void* dynamic_shared() { return active->smem; }

void* open_driver(const char*) { return reinterpret_cast<void*>(uintptr_t(1)); }

cudaError_t run_grid(const void* kernel, const Config& c, void (*body)(void*), void* closure) {
    const long long blocks = (long long) c.grid.x * c.grid.y * c.grid.z;
    const long long threads = (long long) c.block.x * c.block.y * c.block.z;
    int limit;
    {
        std::lock_guard<std::mutex> lock(state_mutex);
        ensure_defaults();
        auto it = dynamic_smem_limit.find({current_device, kernel});
        limit = it == dynamic_smem_limit.end() ? kDefaultSmemLimit : it->second;
        counters.launches += 1;
        (c.stream == nullptr ? counters.legacy_stream_operations : counters.stream_operations) += 1;
        if (blocks < 1 || blocks > 0x7fffffffLL || threads < 1 || threads > 1024 || c.grid.y > 65535 || c.grid.z > 65535) {
            counters.failed_launches += 1;
            return record(cudaErrorInvalidConfiguration);
        }
        if (c.smem > size_t(limit)) {
            counters.failed_launches += 1;
            return record(cudaErrorInvalidValue);
        }
    }
    std::lock_guard<std::mutex> one_at_a_time(launch_mutex);
    Launch l;
    l.threads = int(threads);
    l.state.resize(size_t(threads));
    l.warp_barrier = std::vector<Barrier>(size_t((threads + 31) / 32));
    l.slots.assign(l.warp_barrier.size() * 64, 0);
    l.exchanges.assign(size_t(threads), 0);
    l.results.assign(size_t(threads) * 32, 0);
    l.body = body;
    l.closure = closure;
    l.smem_bytes = c.smem;
    for (int t = 0; t < l.threads; ++t) {
        ThreadState& s = l.state[t];
        s.linear = t;
        s.thread_idx = uint3{unsigned(t) % c.block.x, unsigned(t) / c.block.x % c.block.y,
                             unsigned(t) / (c.block.x * c.block.y)};
    }
    active = &l;
    block_dim = c.block;
    grid_dim = c.grid;

    std::vector<Fiber> fibers;
    // Not zero-filled: only the pages a fiber touches are ever mapped in.
    std::unique_ptr<char[]> stacks;
    std::vector<FiberStart> starts;
    Pool pool;
    pool.launch = &l;
    std::vector<pthread_t> workers;
    std::vector<WorkerArg> worker_args;
    if (fiber_mode) {
        fibers.resize(size_t(threads));
        stacks.reset(new char[size_t(threads) * kFiberStack]);
        starts.resize(size_t(threads));
    } else {
        workers.resize(size_t(threads));
        worker_args.resize(size_t(threads));
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, 1 << 20);
        for (int t = 0; t < l.threads; ++t) {
            worker_args[t] = WorkerArg{&pool, t};
            if (pthread_create(&workers[t], &attr, worker, &worker_args[t]) != 0) fail("pthread_create failed");
        }
        pthread_attr_destroy(&attr);
    }

    for (long long b = 0; b < blocks; ++b) {
        block_idx = uint3{unsigned(b % c.grid.x), unsigned(b / c.grid.x % c.grid.y), unsigned(b / (c.grid.x * (long long) c.grid.y))};
        // A fresh block of exactly the launch's size (AddressSanitizer sees overruns), poisoned so
        // that a read before the block's own write shows (0xff bytes: NaN floats, -1 integers).
        l.smem = c.smem > 0 ? std::malloc(c.smem) : nullptr;
        if (c.smem > 0 && l.smem == nullptr) fail("out of host memory for shared memory");
        if (l.smem) std::memset(l.smem, 0xff, c.smem);
        l.block_barrier.reset(l.threads);
        for (auto& w : l.warp_barrier) w.reset(32);
        std::fill(l.exchanges.begin(), l.exchanges.end(), 0u);
        if (fiber_mode) {
            run_block_fibers(l, fibers, stacks.get(), starts);
        } else {
            std::unique_lock<std::mutex> lock(pool.m);
            pool.finished = 0;
            ++pool.block_generation;
            pool.cv.notify_all();
            pool.cv.wait(lock, [&] { return pool.finished == l.threads; });
        }
        std::free(l.smem);
        l.smem = nullptr;
    }
    if (!fiber_mode) {
        {
            std::lock_guard<std::mutex> lock(pool.m);
            pool.stop = true;
            pool.cv.notify_all();
        }
        for (auto& w : workers) pthread_join(w, nullptr);
    }
    active = nullptr;
    return cudaSuccess;
}

cudaError_t func_get_attributes(cudaFuncAttributes* attr, const void* kernel) {
    std::lock_guard<std::mutex> lock(state_mutex);
    ensure_defaults();
    counters.func_attribute_queries += 1;
    auto it = dynamic_smem_limit.find({current_device, kernel});
    attr->sharedSizeBytes = size_t(limits[current_device].static_smem);
    attr->maxDynamicSharedSizeBytes = size_t(it == dynamic_smem_limit.end() ? kDefaultSmemLimit : it->second);
    attr->maxThreadsPerBlock = 1024;
    return cudaSuccess;
}

cudaError_t func_set_attribute(const void* kernel, cudaFuncAttribute attr, int value) {
    std::lock_guard<std::mutex> lock(state_mutex);
    ensure_defaults();
    counters.func_attribute_queries += 1;
    const gs_emu_limits& lim = limits[current_device];
    if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize || value < 0 || value + lim.static_smem > lim.smem_optin)
        return record(cudaErrorInvalidValue);
    dynamic_smem_limit[{current_device, kernel}] = value;
    return cudaSuccess;
}

cudaError_t occupancy(int* blocks, const void*, int threads, size_t smem) {
    std::lock_guard<std::mutex> lock(state_mutex);
    ensure_defaults();
    counters.occupancy_queries += 1;
    const gs_emu_limits& lim = limits[current_device];
    if (threads < 1 || threads > 1024) return record(cudaErrorInvalidValue);
    // 2048 threads and smem_per_sm bytes per multiprocessor (1 KB reserved per block).
    long long b = std::min<long long>(lim.max_blocks_per_sm, 2048 / threads);
    const long long per_block = (long long) smem + lim.static_smem + 1024;
    b = std::min<long long>(b, lim.smem_per_sm / per_block);
    *blocks = int(b);
    return cudaSuccess;
}

}  // namespace gs_emu

using namespace gs_emu;

// ---- Runtime API ----------------------------------------------------------------------------------

const char* cudaGetErrorString(cudaError_t e) {
    switch (e) {
        case cudaSuccess: return "no error";
        case cudaErrorInvalidValue: return "invalid argument";
        case cudaErrorMemoryAllocation: return "out of memory";
        case cudaErrorInvalidConfiguration: return "invalid configuration argument";
        case cudaErrorInvalidDevice: return "invalid device ordinal";
        case cudaErrorNoDevice: return "no CUDA-capable device is detected";
        default: return "unknown error";
    }
}

const char* cudaGetErrorName(cudaError_t e) {
    switch (e) {
        case cudaSuccess: return "cudaSuccess";
        case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
        case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
        case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
        case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
        case cudaErrorNoDevice: return "cudaErrorNoDevice";
        default: return "cudaErrorUnknown";
    }
}

cudaError_t cudaGetLastError() {
    const cudaError_t e = last_error;
    last_error = cudaSuccess;
    return e;
}

cudaError_t cudaPeekAtLastError() { return last_error; }

cudaError_t cudaGetDeviceCount(int* count) {
    *count = GS_EMU_DEVICES;
    return cudaSuccess;
}

cudaError_t cudaGetDevice(int* device) {
    *device = current_device;
    return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) {
    {
        std::lock_guard<std::mutex> lock(state_mutex);
        counters.set_device_calls += 1;
    }
    if (device < 0 || device >= GS_EMU_DEVICES) return record(cudaErrorInvalidDevice);
    current_device = device;
    return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
    if (device < 0 || device >= GS_EMU_DEVICES) return record(cudaErrorInvalidDevice);
    std::lock_guard<std::mutex> lock(state_mutex);
    ensure_defaults();
    std::snprintf(prop->name, sizeof prop->name, "gradshape host emulation %d", device);
    prop->major = 9;
    prop->minor = 0;
    prop->totalGlobalMem = kDeviceMemory;
    prop->multiProcessorCount = limits[device].multiprocessors;
    return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
    if (device < 0 || device >= GS_EMU_DEVICES) return record(cudaErrorInvalidDevice);
    std::lock_guard<std::mutex> lock(state_mutex);
    ensure_defaults();
    counters.device_attribute_queries += 1;
    const gs_emu_limits& l = limits[device];
    switch (attr) {
        case cudaDevAttrMultiProcessorCount: *value = l.multiprocessors; break;
        case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = l.smem_optin; break;
        case cudaDevAttrMaxSharedMemoryPerMultiprocessor: *value = l.smem_per_sm; break;
        case cudaDevAttrMaxBlocksPerMultiprocessor: *value = l.max_blocks_per_sm; break;
        case cudaDevAttrMaxSharedMemoryPerBlock: *value = kDefaultSmemLimit; break;
        default: return record(cudaErrorInvalidValue);
    }
    return cudaSuccess;
}

cudaError_t cudaDriverGetVersion(int* version) {
    *version = CUDART_VERSION;
    return cudaSuccess;
}

cudaError_t cudaRuntimeGetVersion(int* version) {
    *version = CUDART_VERSION;
    return cudaSuccess;
}

cudaError_t cudaMalloc(void** p, size_t bytes) {
    std::lock_guard<std::mutex> lock(state_mutex);
    counters.mallocs += 1;
    *p = nullptr;
    if (fail_mallocs > 0) {
        --fail_mallocs;
        return record(cudaErrorMemoryAllocation);
    }
    if (bytes == 0) return cudaSuccess;  // as CUDA: NULL, no error
    // 256-byte alignment, as cudaMalloc guarantees; rounded up so aligned_alloc accepts the size.
    void* q = std::aligned_alloc(256, (bytes + 255) / 256 * 256);
    if (q == nullptr) return record(cudaErrorMemoryAllocation);
    allocations[q] = Allocation{bytes, current_device};
    live_bytes += int64_t(bytes);
    *p = q;
    return cudaSuccess;
}

cudaError_t cudaFree(void* p) {
    std::lock_guard<std::mutex> lock(state_mutex);
    counters.frees += 1;
    counters.synchronizations += 1;  // cudaFree synchronizes the device
    if (p == nullptr) return cudaSuccess;
    auto it = allocations.find(p);
    if (it == allocations.end()) return record(cudaErrorInvalidValue);
    if (it->second.device != current_device) counters.frees_on_other_device += 1;
    live_bytes -= int64_t(it->second.bytes);
    allocations.erase(it);
    std::free(p);
    return cudaSuccess;
}

cudaError_t cudaMallocAsync(void** p, size_t bytes, cudaStream_t s) {
    count_stream(s);
    std::lock_guard<std::mutex> lock(state_mutex);
    counters.stream_mallocs += 1;
    *p = nullptr;
    if (fail_mallocs > 0) {
        --fail_mallocs;
        return record(cudaErrorMemoryAllocation);
    }
    if (bytes == 0) return cudaSuccess;
    void* q = std::aligned_alloc(256, (bytes + 255) / 256 * 256);
    if (q == nullptr) return record(cudaErrorMemoryAllocation);
    allocations[q] = Allocation{bytes, current_device};
    live_bytes += int64_t(bytes);
    *p = q;
    return cudaSuccess;
}

cudaError_t cudaFreeAsync(void* p, cudaStream_t s) {
    count_stream(s);
    std::lock_guard<std::mutex> lock(state_mutex);
    counters.stream_frees += 1;
    if (p == nullptr) return cudaSuccess;
    auto it = allocations.find(p);
    if (it == allocations.end()) return record(cudaErrorInvalidValue);
    live_bytes -= int64_t(it->second.bytes);
    allocations.erase(it);
    std::free(p);
    return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
    std::lock_guard<std::mutex> lock(state_mutex);
    *total_bytes = kDeviceMemory;
    *free_bytes = kDeviceMemory - size_t(live_bytes);
    return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind, cudaStream_t s) {
    count_stream(s);
    if (bytes == 0) return cudaSuccess;
    if (dst == nullptr || src == nullptr) return record(cudaErrorInvalidValue);
    std::memmove(dst, src, bytes);
    return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void* dst, int value, size_t bytes, cudaStream_t s) {
    count_stream(s);
    if (bytes == 0) return cudaSuccess;
    if (dst == nullptr) return record(cudaErrorInvalidValue);
    std::memset(dst, value, bytes);
    return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t) {
    std::lock_guard<std::mutex> lock(state_mutex);
    counters.synchronizations += 1;
    return cudaSuccess;
}

// ---- Test controls ----------------------------------------------------------------------------------

extern "C" {

void gs_emu_set_limits(int32_t device, gs_emu_limits l) {
    std::lock_guard<std::mutex> lock(state_mutex);
    ensure_defaults();
    if (device >= 0 && device < GS_EMU_DEVICES) limits[device] = l;
}

gs_emu_limits gs_emu_get_limits(int32_t device) {
    std::lock_guard<std::mutex> lock(state_mutex);
    ensure_defaults();
    return limits[device < 0 || device >= GS_EMU_DEVICES ? 0 : device];
}

void gs_emu_fail_next_mallocs(int32_t n) {
    std::lock_guard<std::mutex> lock(state_mutex);
    fail_mallocs = n;
}

gs_emu_counters gs_emu_get_counters(void) {
    std::lock_guard<std::mutex> lock(state_mutex);
    return counters;
}

void gs_emu_reset_counters(void) {
    std::lock_guard<std::mutex> lock(state_mutex);
    counters = gs_emu_counters{};
}

int64_t gs_emu_live_bytes(void) {
    std::lock_guard<std::mutex> lock(state_mutex);
    return live_bytes;
}

void gs_emu_set_mode(const char* mode) {
    std::lock_guard<std::mutex> lock(state_mutex);
    fiber_mode = std::string(mode) != "threads";
}

const char* gs_emu_mode(void) {
    std::lock_guard<std::mutex> lock(state_mutex);
    return fiber_mode ? "fibers" : "threads";
}

}  // extern "C"

namespace {
// GS_EMU_MODE=threads selects OS threads before main (the sanitizer script sets it).
struct ModeFromEnvironment {
    ModeFromEnvironment() {
        const char* m = std::getenv("GS_EMU_MODE");
        if (m != nullptr) gs_emu_set_mode(m);
    }
} mode_from_environment;
}  // namespace
