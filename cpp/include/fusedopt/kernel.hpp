// What every fused optimizer kernel shares: the description of one tensor's arrays,
// the step driver that runs a kernel over a whole work list through the one parallel
// loop, and a helper that turns run-time flags into compile-time ones.
//
// A kernel is a struct K with
//   static constexpr int n_hyper, n_state, n_scalar;   // sizes of its inputs
//   struct Coef;                                        // per-tensor constants
//   static Coef prepare(const double* hyper, double* const* scalar, void* const* state);
//       // once per tensor per step, before the element loop: advances the scalar
//       // state (step counts, running products) and computes every element-
//       // independent quantity in double precision.
//   template <class T> static void update(const Coef&, T* p, const T* g, T* const* s, std::size_t n);
//       // the element loop over n elements; s[k] is null where state k is absent.
#pragma once

#include <cstddef>
#include <type_traits>
#include <vector>

#include "fusedopt/parallel.hpp"

namespace fusedopt {

inline constexpr int kMaxState = 4;
inline constexpr int kMaxScalar = 2;

// One parameter tensor of a step: its arrays (all with the same layout and dtype),
// its scalar state and the hyperparameters of its param group.
struct TensorRef {
    void* param = nullptr;
    const void* grad = nullptr;
    void* state[kMaxState] = {};
    double* scalar[kMaxScalar] = {};
    const double* hyper = nullptr;
    std::size_t size = 0;
    bool is_double = false;
};

// Runs kernel K for one step over all tensors: the per-tensor constants first (serial,
// cheap), then one parallel sweep over all elements.
template <class K>
void run_step(std::vector<TensorRef>& tensors, const std::vector<std::size_t>& offsets,
              const std::vector<std::size_t>& sizes) {
    static_assert(K::n_state <= kMaxState && K::n_scalar <= kMaxScalar, "kernel needs more slots");
    static_assert(std::is_trivially_copyable_v<typename K::Coef>, "Coef must be plain data");
    thread_local std::vector<typename K::Coef> coefs;  // reused: no allocation per step
    coefs.resize(tensors.size());
    for (std::size_t t = 0; t < tensors.size(); ++t)
        coefs[t] = K::prepare(tensors[t].hyper, tensors[t].scalar, tensors[t].state);
    // A lambda does not capture a thread_local: the worker threads must see this thread's.
    const typename K::Coef* coef = coefs.data();
    const TensorRef* refs = tensors.data();
    parallel_pieces(offsets, sizes, [coef, refs](std::size_t t, std::size_t start, std::size_t count) {
        const TensorRef& r = refs[t];
        if (r.is_double) {
            double* s[kMaxState];
            for (int k = 0; k < kMaxState; ++k) s[k] = r.state[k] ? static_cast<double*>(r.state[k]) + start : nullptr;
            K::template update<double>(coef[t], static_cast<double*>(r.param) + start,
                                       static_cast<const double*>(r.grad) + start, s, count);
        } else {
            float* s[kMaxState];
            for (int k = 0; k < kMaxState; ++k) s[k] = r.state[k] ? static_cast<float*>(r.state[k]) + start : nullptr;
            K::template update<float>(coef[t], static_cast<float*>(r.param) + start,
                                      static_cast<const float*>(r.grad) + start, s, count);
        }
    });
}

// with_flags(f, a, b, ...) calls f(std::bool_constant<a>{}, std::bool_constant<b>{}, ...):
// a kernel branches on its options once, outside the element loop, and each
// combination gets its own branch-free, vectorized loop.
template <class F>
inline void with_flags(F&& f) { f(); }
template <class F, class... Rest>
inline void with_flags(F&& f, bool first, Rest... rest) {
    if (first)
        with_flags([&](auto... c) { f(std::true_type{}, c...); }, rest...);
    else
        with_flags([&](auto... c) { f(std::false_type{}, c...); }, rest...);
}

// NaN-propagating maximum, like numpy.maximum and torch.maximum.
template <class T>
inline T nan_max(T a, T b) { return (a > b || a != a) ? a : b; }

}  // namespace fusedopt
