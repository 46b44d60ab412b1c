// Instruction-set targets: run-time dispatch of the element loops.
//
// Every element loop of the extension (the optimizer kernels, the finiteness check of
// the non-finite guard, the bandwidth kernels) is compiled several times from one source,
// cpp/src/target.cpp: once per target (x86-64: "baseline" SSE2, "x86-64-v3" AVX2+FMA,
// "x86-64-v4" AVX-512; elsewhere the baseline alone; or one "native" target for a
// FUSEDOPT_NATIVE build). Each copy lives in a namespace of its own
// (fusedopt::target_<name>, an inline namespace: code still says fusedopt::run_step), so
// no function compiled for one target can stand in for another's at link time, and each
// fills a TargetTable of plain function pointers. At import the best target this CPU
// runs is chosen (FUSEDOPT_TARGET=<name> asks for a lower one); the bindings call the
// loops through its table only.
//
// Every target gives the same bits: no FMA contraction (-ffp-contract=off), no fast-math,
// and sqrt and division are correctly rounded on every instruction set.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "fusedopt/types.hpp"

// The target of this translation unit: set by CMake for target.cpp, "generic" elsewhere.
#ifndef FUSEDOPT_TARGET
#define FUSEDOPT_TARGET generic
#endif
#define FUSEDOPT_CONCAT_(a, b) a##b
#define FUSEDOPT_CONCAT(a, b) FUSEDOPT_CONCAT_(a, b)
// The namespace that holds this translation unit's element loops (see above).
#define FUSEDOPT_TARGET_NAMESPACE FUSEDOPT_CONCAT(target_, FUSEDOPT_TARGET)

namespace fusedopt {

// The arrays of one mixed-width bandwidth sweep (fusedopt._core.traffic_mixed): see bench.hpp.
struct MixedWork;
using MixedSweepFn = void (*)(const MixedWork&, long repeat);

// What one compiled target offers: every element loop, as plain function pointers.
struct TargetTable {
    const char* name;     // "baseline", "x86-64-v3", "x86-64-v4" or "native"
    const char* isa;      // the instruction sets its loops may use, e.g. "SSE2 AVX AVX2 FMA"
    const StepFn* steps;  // one per kernel, in the order of kernels/all.hpp
    std::size_t n_steps;
    FiniteFn grads_finite;
    NormFn grad_norm_sums;
    RewriteFn rewrite_grads;
    AccumulateFn accumulate_mean;
    SweepFn traffic;
    SweepFn triad;
    AdafactorFn adafactor;       // fusedopt/adafactor.hpp: not a Plan kernel
    MixedSweepFn traffic_mixed;  // fusedopt/bench.hpp: arrays of several element widths
};

// The targets this build holds, from the lowest to the best.
const std::vector<const TargetTable*>& compiled_targets();
// Whether this CPU (and its operating system) can run the target called `name`.
bool cpu_runs(const std::string& name);
// The target in use: the best this CPU runs, or the one FUSEDOPT_TARGET asks for. Chosen
// once, at the first call.
const TargetTable& active_target();
// Why the target in use is not the one FUSEDOPT_TARGET asked for ("" when it is, or when
// nothing was asked).
const std::string& target_request_note();

}  // namespace fusedopt
