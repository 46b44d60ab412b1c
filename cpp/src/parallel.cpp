#include "fusedopt/parallel.hpp"

#include <atomic>

namespace fusedopt {

namespace {
int initial_threads() {
#ifdef _OPENMP
    return omp_get_max_threads();  // honours OMP_NUM_THREADS
#else
    return 1;
#endif
}
std::atomic<int>& thread_setting() {
    static std::atomic<int> n{initial_threads()};
    return n;
}
}  // namespace

int get_num_threads() { return thread_setting().load(std::memory_order_relaxed); }

void set_num_threads(int n) {
#ifdef _OPENMP
    thread_setting().store(n < 1 ? 1 : n, std::memory_order_relaxed);
#else
    (void)n;
#endif
}

bool openmp_enabled() {
#ifdef _OPENMP
    return true;
#else
    return false;
#endif
}

}  // namespace fusedopt
