// One instruction-set target's element loops: every optimizer kernel's step, the
// finiteness check, the reductions and grad rewrites of reduce.hpp and the bandwidth
// kernels, gathered into its TargetTable.
//
// CMake compiles this file once per target, with FUSEDOPT_TARGET=<id> (the namespace of
// its code, see target.hpp) and, for x86-64-v3 / -v4, FUSEDOPT_TARGET_V3 / _V4. Those
// targets are selected by a pragma placed after every standard header: only the code
// defined below it (fusedopt's own loops, in the target's namespace) may use the wider
// instruction sets, so no standard-library function that the compiler emits out of line
// ever carries them into code that another target runs.
#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string_view>
#include <type_traits>
#include <vector>
#if defined(FUSEDOPT_TARGET_V3) || defined(FUSEDOPT_TARGET_V4)
#include <immintrin.h>  // F16C's conversions (mixed.hpp), used only below the pragma
#endif

#include "fusedopt/target.hpp"
#include "fusedopt/types.hpp"

#if defined(FUSEDOPT_TARGET_V3) || defined(FUSEDOPT_TARGET_V4)
// x86-64-v3 (AVX2, FMA, BMI1/2, F16C) and -v4 (AVX-512 F/BW/CD/DQ/VL), as feature lists that
// every GCC and Clang that knows them accepts. FMA may be used for nothing but what the
// source says: -ffp-contract=off forbids contracting a * b + c.
#if defined(FUSEDOPT_TARGET_V4)
#define FUSEDOPT_TARGET_FEATURES \
    "sse3,ssse3,sse4.1,sse4.2,popcnt,avx,avx2,fma,bmi,bmi2,f16c,avx512f,avx512bw,avx512cd,avx512dq,avx512vl"
#else
#define FUSEDOPT_TARGET_FEATURES "sse3,ssse3,sse4.1,sse4.2,popcnt,avx,avx2,fma,bmi,bmi2,f16c"
#endif
// A #pragma's arguments are not macro-expanded; _Pragma's string is built after expansion.
#define FUSEDOPT_PRAGMA(text) _Pragma(#text)
#define FUSEDOPT_TARGET_PUSH_GCC(features) FUSEDOPT_PRAGMA(GCC target(features))
#define FUSEDOPT_TARGET_PUSH_CLANG(features) \
    FUSEDOPT_PRAGMA(clang attribute push(__attribute__((target(features))), apply_to = function))
#if defined(__clang__)
FUSEDOPT_TARGET_PUSH_CLANG(FUSEDOPT_TARGET_FEATURES)
#elif defined(__GNUC__)
#pragma GCC push_options
FUSEDOPT_TARGET_PUSH_GCC(FUSEDOPT_TARGET_FEATURES)
#else
#error "x86-64-v3/v4 targets need GCC or Clang"
#endif
#endif

#include "fusedopt/adafactor.hpp"
#include "fusedopt/bench.hpp"
#include "fusedopt/finite.hpp"
#include "fusedopt/kernels/all.hpp"
#include "fusedopt/reduce.hpp"

namespace fusedopt {
inline namespace FUSEDOPT_TARGET_NAMESPACE {

namespace {

template <class... K>
constexpr std::array<StepFn, sizeof...(K)> steps_of(KernelList<K...>) {
    return {&run_step<K>...};
}

constexpr auto kSteps = steps_of(AllKernels{});

// The instruction sets the loops of this target may use, as build_info() reports them.
constexpr const char* kIsa =
#if defined(FUSEDOPT_TARGET_V4)
    "SSE2 SSE4.2 AVX AVX2 FMA AVX512F AVX512BW AVX512CD AVX512DQ AVX512VL";
#elif defined(FUSEDOPT_TARGET_V3)
    "SSE2 SSE4.2 AVX AVX2 FMA";
#elif defined(__AVX512F__)
    "SSE2 AVX AVX2 FMA AVX512F (native)";
#elif defined(__AVX2__)
    "SSE2 AVX AVX2 (native)";
#elif defined(__SSE2__)
    "SSE2";
#elif defined(__ARM_NEON)
    "NEON";
#else
    "scalar";
#endif

}  // namespace

}  // namespace FUSEDOPT_TARGET_NAMESPACE
}  // namespace fusedopt

#if defined(FUSEDOPT_TARGET_V3) || defined(FUSEDOPT_TARGET_V4)
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif

namespace fusedopt {

// This target's table, found by dispatch.cpp under the name target_table_<id>. Defined
// after the pragma, and constant-initialized: reading it runs no code of this target,
// so any CPU can list what a build holds.
const TargetTable& FUSEDOPT_CONCAT(target_table_, FUSEDOPT_TARGET)() {
    static constexpr TargetTable table{FUSEDOPT_TARGET_NAME, kIsa,
                                       kSteps.data(),        kSteps.size(),
                                       &grads_finite,        &grad_norm_sums,
                                       &rewrite_grads,       &accumulate_mean,
                                       &bench::traffic,      &bench::triad,
                                       &adafactor::step,     &bench::traffic_mixed};
    return table;
}

}  // namespace fusedopt
