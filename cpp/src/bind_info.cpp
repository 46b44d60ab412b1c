// What the build did, and the thread setting.
#include <pybind11/pybind11.h>

#include "fusedopt/parallel.hpp"

namespace py = pybind11;

namespace fusedopt {

namespace {
py::list simd_extensions() {
    py::list out;
#ifdef __SSE2__
    out.append("SSE2");
#endif
#ifdef __AVX__
    out.append("AVX");
#endif
#ifdef __FMA__
    out.append("FMA");
#endif
#ifdef __AVX2__
    out.append("AVX2");
#endif
#ifdef __AVX512F__
    out.append("AVX512F");
#endif
#ifdef __AVX512VL__
    out.append("AVX512VL");
#endif
#ifdef __ARM_NEON
    out.append("NEON");
#endif
#ifdef __ARM_FEATURE_SVE
    out.append("SVE");
#endif
    return out;
}
}  // namespace

void register_info(py::module_& m) {
    m.def(
        "build_info",
        [] {
            py::dict d;
            d["openmp"] = openmp_enabled();
#ifdef _OPENMP
            d["openmp_version"] = _OPENMP;
#else
            d["openmp_version"] = py::none();
#endif
#ifdef FUSEDOPT_MARCH_NATIVE
            d["march_native"] = true;
#else
            d["march_native"] = false;
#endif
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
            d["simd"] = simd_extensions();
            d["num_threads"] = get_num_threads();
            d["parallel_min_elements"] = kParallelMin;
            d["grain_elements"] = kGrain;
            d["chunks_per_thread"] = kChunksPerThread;
            d["chunk_min_elements"] = kChunkMin;
            return d;
        },
        "How the extension was built: OpenMP, vector instruction sets, compiler, thread setting.");
    m.def("get_num_threads", &get_num_threads, "Threads a fused step may use (OMP_NUM_THREADS at import by default).");
    m.def(
        "set_num_threads",
        [](int n) {
            if (n < 1) throw py::value_error("n must be at least 1, got " + std::to_string(n));
            set_num_threads(n);
        },
        py::arg("n"), "Sets the threads a fused step may use (no effect without OpenMP).");
}

}  // namespace fusedopt
