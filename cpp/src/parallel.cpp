// fusedopt's thread pool and thread setting (see parallel.hpp).
//
// A job is n chunks and a function. The calling thread publishes it, wakes as many
// sleeping workers as the step may use, and takes chunks itself; every thread takes
// chunks from one shared ticket until none is left. The caller then waits only for the
// chunks other threads are still running, never for a worker to arrive: a worker that
// wakes late (its core was busy) finds the ticket exhausted or already at the next job,
// and goes back to sleep. Workers sleep on a condition variable between jobs; nothing
// spins after a step, so the cores go to whoever needs them next (NumPy's BLAS, another
// process). A worker never touches Python.
//
// The ticket holds the job's generation in its high 32 bits and the next chunk in the low
// 32: a worker can take a chunk only of the job it read (a compare-and-swap against the
// generation), and a job's fields stay valid until its last chunk is done, which is
// before the caller returns and before the next job is published.
//
// fork(): the pool's locks are taken before a fork and released after it in the parent;
// the child, which has none of the workers, starts a new, empty pool (the old one is left
// behind untouched). One job at a time: a step that finds the pool busy (another thread
// of the process is stepping) runs on its own thread.
#include "fusedopt/parallel.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#include <sched.h>
#define FUSEDOPT_POSIX 1
#endif

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#include <immintrin.h>
#define FUSEDOPT_PAUSE() _mm_pause()
#else
#define FUSEDOPT_PAUSE() std::this_thread::yield()
#endif

namespace fusedopt {

namespace {

#ifdef FUSEDOPT_THREADS
constexpr std::uint64_t kLow = 0xffffffffu;

class Pool {
public:
    void run(std::size_t n, int threads, ChunkFn fn, void* ctx);
    int workers() {
        std::lock_guard<std::mutex> lock(mu_);
        return static_cast<int>(threads_.size());
    }
    // fork(): hold both locks across it (parent and child), release them in the parent.
    void lock_all() {
        run_mu_.lock();
        mu_.lock();
    }
    void unlock_all() {
        mu_.unlock();
        run_mu_.unlock();
    }

private:
    void worker_loop();
    void take_chunks(std::uint32_t gen, std::size_t n, ChunkFn fn, void* ctx);
    bool admit(std::uint32_t gen, int helpers);
    int start_workers(int wanted);

    std::mutex run_mu_;  // held by the caller of a job, for the whole job
    std::mutex mu_;      // guards what follows up to the atomics
    std::condition_variable wake_;
    std::vector<std::thread*> threads_;  // never joined or destroyed: they live as long as the process
    std::uint32_t generation_ = 0;
    ChunkFn fn_ = nullptr;
    void* ctx_ = nullptr;
    std::size_t n_chunks_ = 0;
    int helpers_ = 0;                       // workers the current job may use
    std::atomic<std::uint64_t> ticket_{0};  // generation << 32 | next chunk
    std::atomic<std::uint64_t> joined_{0};  // generation << 32 | workers admitted
    std::atomic<std::size_t> done_{0};      // chunks of the current job finished
};

// Runs chunks of job `gen` while any is left.
void Pool::take_chunks(std::uint32_t gen, std::size_t n, ChunkFn fn, void* ctx) {
    std::uint64_t t = ticket_.load(std::memory_order_relaxed);
    for (;;) {
        if (static_cast<std::uint32_t>(t >> 32) != gen || (t & kLow) >= n) return;
        if (ticket_.compare_exchange_weak(t, t + 1, std::memory_order_acq_rel, std::memory_order_relaxed)) {
            fn(ctx, static_cast<std::size_t>(t & kLow));
            done_.fetch_add(1, std::memory_order_release);
            t = ticket_.load(std::memory_order_relaxed);
        }
    }
}

// Whether a worker may join job `gen`, which asked for `helpers` workers.
bool Pool::admit(std::uint32_t gen, int helpers) {
    std::uint64_t j = joined_.load(std::memory_order_relaxed);
    for (;;) {
        if (static_cast<std::uint32_t>(j >> 32) != gen || static_cast<int>(j & kLow) >= helpers) return false;
        if (joined_.compare_exchange_weak(j, j + 1, std::memory_order_relaxed)) return true;
    }
}

void Pool::worker_loop() {
    std::uint32_t seen = 0;
    for (;;) {
        std::uint32_t gen;
        ChunkFn fn;
        void* ctx;
        std::size_t n;
        int helpers;
        {
            std::unique_lock<std::mutex> lock(mu_);
            wake_.wait(lock, [&] { return generation_ != seen; });
            seen = gen = generation_;
            fn = fn_;
            ctx = ctx_;
            n = n_chunks_;
            helpers = helpers_;
        }
        if (admit(gen, helpers)) take_chunks(gen, n, fn, ctx);
    }
}

// Starts workers up to `wanted` (with mu_ held); returns how many there are. A thread the
// system refuses leaves the pool smaller: the step runs with what there is.
int Pool::start_workers(int wanted) {
    while (static_cast<int>(threads_.size()) < wanted) {
        try {
            threads_.push_back(new std::thread([this] { worker_loop(); }));
        } catch (const std::system_error&) {
            break;
        }
    }
    return static_cast<int>(threads_.size());
}

void Pool::run(std::size_t n, int threads, ChunkFn fn, void* ctx) {
    std::unique_lock<std::mutex> busy(run_mu_, std::try_to_lock);
    int helpers = static_cast<int>(std::min<std::size_t>(static_cast<std::size_t>(std::max(threads, 1) - 1), n - 1));
    std::uint32_t gen = 0;
    if (busy.owns_lock() && helpers > 0 && n <= kLow) {
        std::lock_guard<std::mutex> lock(mu_);
        helpers = std::min(helpers, start_workers(helpers));
        gen = ++generation_;
        if (gen == 0) gen = ++generation_;  // 0 is what a new worker has seen
        fn_ = fn;
        ctx_ = ctx;
        n_chunks_ = n;
        helpers_ = helpers;
        done_.store(0, std::memory_order_relaxed);
        joined_.store(static_cast<std::uint64_t>(gen) << 32, std::memory_order_relaxed);
        ticket_.store(static_cast<std::uint64_t>(gen) << 32, std::memory_order_release);
    } else {
        helpers = 0;
    }
    if (helpers == 0) {  // the pool is busy with another thread's step, or one thread was asked for
        for (std::size_t k = 0; k < n; ++k) fn(ctx, k);
        return;
    }
    if (helpers >= static_cast<int>(threads_.size()))
        wake_.notify_all();
    else
        for (int i = 0; i < helpers; ++i) wake_.notify_one();
    take_chunks(gen, n, fn, ctx);
    // Wait for the chunks the workers are still running (only those: a worker that has
    // not arrived yet will find nothing left).
    for (unsigned spins = 0; done_.load(std::memory_order_acquire) < n; ++spins) {
        if (spins < 256)
            FUSEDOPT_PAUSE();
        else
            std::this_thread::yield();
    }
}

std::atomic<Pool*> g_pool{nullptr};
std::once_flag g_pool_once;

#ifdef FUSEDOPT_POSIX
void before_fork() { g_pool.load()->lock_all(); }
void after_fork_parent() { g_pool.load()->unlock_all(); }
// The child has only the thread that forked: the old pool's workers do not exist there.
void after_fork_child() { g_pool.store(new Pool); }
#endif

Pool& pool() {
    std::call_once(g_pool_once, [] {
        g_pool.store(new Pool);  // never destroyed: workers may sleep in it until exit
#ifdef FUSEDOPT_POSIX
        pthread_atfork(before_fork, after_fork_parent, after_fork_child);
#endif
    });
    return *g_pool.load();
}

// The default thread count: OMP_NUM_THREADS when set (its first entry, as OpenMP reads
// it), else the CPUs this process may run on.
int initial_threads(const char** source) {
    if (const char* env = std::getenv("OMP_NUM_THREADS")) {
        char* end = nullptr;
        const long n = std::strtol(env, &end, 10);
        if (end != env && n >= 1) {
            *source = "OMP_NUM_THREADS";
            return static_cast<int>(std::min(n, 1024L));
        }
    }
    *source = "cpus";
#if defined(__linux__)
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) {
        *source = "cpus (affinity)";
        return CPU_COUNT(&set);
    }
#endif
    const unsigned hw = std::thread::hardware_concurrency();
    return hw ? static_cast<int>(hw) : 1;
}

#endif  // FUSEDOPT_THREADS

struct ThreadSetting {
    const char* source = "";
    std::atomic<int> n{1};
    ThreadSetting() {
#ifdef FUSEDOPT_THREADS
        n.store(initial_threads(&source));
#else
        source = "built without threads";
#endif
    }
};

ThreadSetting& thread_setting() {
    static ThreadSetting s;
    return s;
}

}  // namespace

int get_num_threads() { return thread_setting().n.load(std::memory_order_relaxed); }

void set_num_threads(int n) {
#ifdef FUSEDOPT_THREADS
    thread_setting().n.store(std::clamp(n, 1, 1024), std::memory_order_relaxed);
#else
    (void)n;
#endif
}

const char* num_threads_source() { return thread_setting().source; }

bool threads_enabled() {
#ifdef FUSEDOPT_THREADS
    return true;
#else
    return false;
#endif
}

int pool_workers() {
#ifdef FUSEDOPT_THREADS
    return g_pool.load() ? pool().workers() : 0;
#else
    return 0;
#endif
}

void run_chunks(std::size_t n_chunks, int n_threads, ChunkFn fn, void* ctx) {
    if (n_chunks == 0) return;
#ifdef FUSEDOPT_THREADS
    if (n_threads > 1 && n_chunks > 1) {
        pool().run(n_chunks, n_threads, fn, ctx);
        return;
    }
#else
    (void)n_threads;
#endif
    for (std::size_t k = 0; k < n_chunks; ++k) fn(ctx, k);
}

}  // namespace fusedopt
