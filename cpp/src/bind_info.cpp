// What the build did, and the thread setting.
#include <pybind11/pybind11.h>

#include "fusedopt/parallel.hpp"
#include "fusedopt/target.hpp"

namespace py = pybind11;

namespace fusedopt {

void register_info(py::module_& m) {
    m.def(
        "build_info",
        [] {
            py::dict d;
            // Threads: fusedopt's own pool (OpenMP is not used).
            d["threads"] = threads_enabled() ? "pool" : "none";
            d["openmp"] = false;
#ifdef FUSEDOPT_MARCH_NATIVE
            d["march_native"] = true;
#else
            d["march_native"] = false;
#endif
            // Run-time dispatch: the instruction-set targets compiled in, which of them this
            // CPU runs, and the one in use (FUSEDOPT_TARGET=<name> asks for another).
            py::list targets, runs;
            for (const TargetTable* t : compiled_targets()) {
                targets.append(t->name);
                if (cpu_runs(t->name)) runs.append(t->name);
            }
            d["targets"] = targets;
            d["cpu_runs"] = runs;
            d["target"] = active_target().name;
            d["target_note"] = target_request_note();
            d["simd"] = py::str(active_target().isa).attr("split")();
#if defined(__clang__)
            d["compiler"] = std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
            d["compiler"] = std::string("gcc ") + __VERSION__;
#else
            d["compiler"] = "unknown";
#endif
#if defined(__SANITIZE_ADDRESS__)
            d["sanitizers"] = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
            d["sanitizers"] = true;
#else
            d["sanitizers"] = false;
#endif
#else
            d["sanitizers"] = false;
#endif
            d["num_threads"] = get_num_threads();
            d["num_threads_default_from"] = num_threads_source();
            d["pool_workers"] = pool_workers();
            d["parallel_min_elements"] = kParallelMin;
            d["grain_elements"] = kGrain;
            d["chunks_per_thread"] = kChunksPerThread;
            d["chunk_min_elements"] = kChunkMin;
            return d;
        },
        "How the extension was built: instruction-set targets and the one in use, compiler, threads.");
    m.def("get_num_threads", &get_num_threads,
          "Threads a fused step may use (the CPUs this process may run on, or OMP_NUM_THREADS, by default).");
    m.def(
        "set_num_threads",
        [](int n) {
            if (n < 1) throw py::value_error("n must be at least 1, got " + std::to_string(n));
            set_num_threads(n);
        },
        py::arg("n"), "Sets the threads a fused step may use (no effect in a build without threads).");
}

}  // namespace fusedopt
