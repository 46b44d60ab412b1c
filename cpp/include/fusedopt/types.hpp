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
inline constexpr int kMaxScalar = 3;  // ASGD: step, eta, mu

// The element types of a tensor's arrays (TensorRef::param_type, state_type).
enum DType : unsigned char { kFloat32 = 0, kFloat64 = 1, kBFloat16 = 2, kFloat16 = 3, kInt8 = 4 };
// The code of an int8 state array (half.hpp): none, linear signed, or the exponent code
// of non-negative second moments.
enum QuantCode : unsigned char { kQuantNone = 0, kQuantLinear = 1, kQuantExponent = 2 };
// Elements per int8 quantization block, each with its float32 absmax.
inline constexpr std::size_t kQuantBlock = 64;

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
    int group;  // the index of its param group (kernels with group values read it)
    // Low precision (half.hpp, mixed.hpp). param_type: the dtype of param and grad;
    // state_type: of its state arrays (float32 for half params by default; kInt8 with
    // absmax[k], one float32 per kQuantBlock elements, and quant[k] the code of state k).
    // Value-initialized: float32 everywhere, which float64 tensors must overwrite.
    unsigned char param_type;
    unsigned char state_type;
    unsigned char quant[kMaxState];
    float* absmax[kMaxState];
    // Stochastic rounding of the parameter writes (half params), keyed per step and tensor.
    bool stochastic;
    unsigned sr_key[2];
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

// Every param group's numbers as a kernel with group values sees them (kernel.hpp):
// hyper[g * n_hyper + i] is group g's i-th hyperparameter (read-only), values[g * n_values
// + k] its value of the kernel's k-th group-value key (read from the group dict: a float,
// NaN for None or a missing key), which the kernel may rewrite; the binding writes those
// that changed back to the group dicts after a step that was taken.
struct GroupValues {
    const double* hyper;
    double* values;
    int n_groups;
};

// What a step does besides the update, and what it found (set by the binding, read back
// after the step): the opt-in non-finite guard, and the global L2 norm of the grads that
// max_grad_norm clips by (one read-only pass before the update, which folds the scale in).
struct StepControl {
    bool skip_nonfinite;  // skip the whole step (nothing written) if a grad is inf or NaN
    bool want_norm;       // compute the norm even without clipping (track_grad_norm)
    bool clip;            // scale the grads as clip_grad_norm_(grads, max_norm) would
    double max_norm;
    double norm;         // out: the total L2 norm of the grads before clipping (NaN if not computed)
    bool taken;          // out: false when the guard skipped the step
    GroupValues groups;  // every param group's values (kernels with group values; kernel.hpp)
};

// A whole optimizer step of one kernel over a work list of tensors.
using StepFn = void (*)(std::vector<TensorRef>&, const std::vector<std::size_t>& offsets, const std::vector<std::size_t>& sizes,
                        StepControl&);
// Whether every grad of a work list is finite.
using FiniteFn = bool (*)(const std::vector<TensorRef>&, const std::vector<std::size_t>& offsets,
                          const std::vector<std::size_t>& sizes);
// The p-norm sums of every grad (reduce.hpp: grad_norm_sums).
using NormFn = double (*)(const std::vector<TensorRef>&, const std::vector<std::size_t>& offsets,
                          const std::vector<std::size_t>& sizes, double p, double* per_tensor);
// Scale (clamp = false, by a) or clamp (to [a, b]) every tensor's `param` array in place.
using RewriteFn = void (*)(const std::vector<TensorRef>&, const std::vector<std::size_t>& offsets,
                           const std::vector<std::size_t>& sizes, bool clamp, double a, double b);
// The running mean of MultiSteps; returns whether every grad was finite.
using AccumulateFn = bool (*)(const std::vector<TensorRef>&, const std::vector<std::size_t>& offsets,
                              const std::vector<std::size_t>& sizes, double count);
// A bandwidth sweep, `repeat` times.
using SweepFn = void (*)(const BenchWork&, double scale, long repeat);

// The numbers of one Adafactor step of one parameter (fusedopt/adafactor.hpp), computed in
// double by the caller: weight = step ** beta2_decay (the lerp weight 1 - beta2_t), rho =
// min(lr, 1 / sqrt(step)).
struct AdafactorHyper {
    double lr, weight_decay, eps1, eps2, d, weight, rho;
    bool maximize;
};
// One Adafactor step of one parameter, in place: factored when col_var is not null (B
// matrices of R x C; row_var B*R, col_var B*C), else unfactored (B*R*C elements; the
// variance in row_var). All arrays C-contiguous, float64 if is_double else float32.
using AdafactorFn = void (*)(void* param, const void* grad, void* row_var, void* col_var, std::size_t B, std::size_t R,
                             std::size_t C, bool is_double, const AdafactorHyper& h);

// A list of kernel types (kernels/all.hpp holds the one list of them all).
template <class... K>
struct KernelList {};

}  // namespace fusedopt
