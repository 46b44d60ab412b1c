// The plain types that every part of the extension shares, whatever instruction set
// its code was compiled for: what a kernel declares it reads, one tensor of a step,
// a bandwidth sweep's arrays, and the signatures of the loops a target provides.
//
// Nothing here holds code (no inline functions, no constructors): code compiled for one
// target must never stand in for another's (see target.hpp).
#pragma once

#include <cstddef>
#include <vector>

namespace fusedopt {

inline constexpr int kMaxState = 4;
inline constexpr int kMaxScalar = 2;

// One hyperparameter a kernel reads from its param group: the key, and how many numbers
// it holds (a pair such as betas holds 2).
struct Hyper {
    const char* name;
    int width = 1;
};

// One parameter tensor of a step: its arrays (all with the same layout and dtype),
// its scalar state and the hyperparameters of its param group. Value-initialize it
// (`TensorRef r{};`): every pointer null.
struct TensorRef {
    void* param;
    const void* grad;
    void* state[kMaxState];
    double* scalar[kMaxScalar];
    const double* hyper;
    std::size_t size;
    bool is_double;
};

// The most in-place and read-only roles a bandwidth sweep takes.
inline constexpr int kMaxInplace = 6;
inline constexpr int kMaxReadonly = 4;

// The arrays of one bandwidth sweep (fusedopt._core.traffic / triad): n_inplace +
// n_readonly roles per tensor; data[t * (n_inplace + n_readonly) + k] is role k of
// tensor t (in-place roles first).
struct BenchWork {
    int n_inplace;
    int n_readonly;
    bool is_double;
    std::vector<void*> data;
    std::vector<std::size_t> sizes, offsets;
};

// A whole optimizer step of one kernel over a work list of tensors.
using StepFn = void (*)(std::vector<TensorRef>&, const std::vector<std::size_t>& offsets, const std::vector<std::size_t>& sizes);
// Whether every grad of a work list is finite.
using FiniteFn = bool (*)(const std::vector<TensorRef>&, const std::vector<std::size_t>& offsets,
                          const std::vector<std::size_t>& sizes);
// A bandwidth sweep, `repeat` times.
using SweepFn = void (*)(const BenchWork&, double scale, long repeat);

// A list of kernel types (kernels/all.hpp holds the one list of them all).
template <class... K>
struct KernelList {};

}  // namespace fusedopt
