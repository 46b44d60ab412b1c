// What every fused optimizer kernel shares: the declaration of its inputs by name, the
// step driver that runs a kernel over a whole work list through the one parallel loop,
// and a helper that turns run-time flags into compile-time ones. Compiled once per
// instruction-set target (target.hpp), in the target's namespace.
//
// A kernel is a struct K that names its inputs and says what to do with them:
//   static constexpr const char* name = "adam";          // its name in the registry
//   static constexpr std::array hyper{Hyper{"lr"}, Hyper{"betas", 2}, ...};
//       // the param-group keys it reads, in order, each with its number of values
//       // (a pair such as betas holds 2). The binding reads them from the groups by
//       // these names and hands the kernel one flat array of doubles.
//   static constexpr std::array state{"exp_avg", ...};     // element-wise state arrays
//   static constexpr std::array<const char*, N> scalars{"step", ...};  // float64 scalars
//   struct Coef;                                        // per-tensor constants
//   static Coef prepare(const double* hyper, double* const* scalar, void* const* state);
//       // once per tensor per step, before the element loop: advances the scalar
//       // state (step counts, running products) and computes every element-
//       // independent quantity in double precision. It must depend on nothing but
//       // the hyperparameters, the scalar state and which state arrays are present:
//       // run_step reuses its result for the next tensor of the same group in the
//       // same situation (a model of many tensors pays for pow() once per group).
//   template <class T> static void update(const Coef&, T* p, const T* g, T* const* s, std::size_t n);
//       // the element loop over n elements; s[k] is null where state k is absent.
//   struct Index { static constexpr int lr = at(hyper, "lr"), beta2 = at(hyper, "betas", 1),
//                  exp_avg = at(state, "exp_avg"), step = at(scalars, "step"); };
//       // where each input sits, found by name at compile time (a static constexpr
//       // initializer is a constant expression: a name the tables do not declare does
//       // not compile); prepare and update read h[Index::lr], s[Index::exp_avg], ...
// Python reads the same declarations (fusedopt._core.kernels) and checks each optimizer
// class's table against them when the class is created, at import.
#pragma once

#include <array>
#include <cstddef>
#include <cstring>
#include <string_view>
#include <type_traits>
#include <vector>

#include "fusedopt/parallel.hpp"
#include "fusedopt/types.hpp"

namespace fusedopt {
inline namespace FUSEDOPT_TARGET_NAMESPACE {

// The position of hyperparameter `name` (its `element`-th number) in the flat array a
// kernel receives. In a constant expression (as in a kernel's Index), an unknown name or
// element does not compile.
template <std::size_t N>
constexpr int at(const std::array<Hyper, N>& table, std::string_view name, int element = 0) {
    int offset = 0;
    for (const Hyper& h : table) {
        if (name == h.name) {
            if (element < 0 || element >= h.width) throw "element out of range for this hyperparameter";
            return offset + element;
        }
        offset += h.width;
    }
    throw "the kernel declares no hyperparameter of that name";
}

// The slot of state array or scalar `name`; in a constant expression, as above.
template <std::size_t N>
constexpr int at(const std::array<const char*, N>& names, std::string_view name) {
    for (std::size_t k = 0; k < N; ++k)
        if (name == names[k]) return static_cast<int>(k);
    throw "the kernel declares no state of that name";
}

// How many numbers a kernel's hyperparameters hold in all.
template <std::size_t N>
constexpr int total_width(const std::array<Hyper, N>& table) {
    int n = 0;
    for (const Hyper& h : table) n += h.width;
    return n;
}

// What K::prepare sees of a tensor: its group's hyperparameters, its scalar state
// before the step and which state arrays it has. Equal situations give equal results.
struct Situation {
    const double* hyper = nullptr;
    unsigned present = 0;
    double before[kMaxScalar] = {}, after[kMaxScalar] = {};

    Situation() = default;
    explicit Situation(const TensorRef& r) : hyper(r.hyper) {
        for (int k = 0; k < kMaxState; ++k) present |= r.state[k] ? 1u << k : 0u;
        for (int k = 0; k < kMaxScalar; ++k) {
            present |= r.scalar[k] ? 1u << (8 + k) : 0u;
            before[k] = r.scalar[k] ? *r.scalar[k] : 0.0;
        }
    }
    bool same_as(const Situation& o) const {
        if (hyper != o.hyper || present != o.present) return false;
        for (int k = 0; k < kMaxScalar; ++k)  // bitwise: the same inputs, NaN included
            if (std::memcmp(&before[k], &o.before[k], sizeof(double)) != 0) return false;
        return true;
    }
    void record_after(const TensorRef& r) {
        for (int k = 0; k < kMaxScalar; ++k) after[k] = r.scalar[k] ? *r.scalar[k] : 0.0;
    }
    // Gives r the scalar state prepare() gave the tensor this situation was recorded on.
    void advance(TensorRef& r) const {
        for (int k = 0; k < kMaxScalar; ++k)
            if (r.scalar[k]) *r.scalar[k] = after[k];
    }
};

// Runs kernel K for one step over all tensors: the per-tensor constants first (serial,
// cheap), then one parallel sweep over all elements.
template <class K>
void run_step(std::vector<TensorRef>& tensors, const std::vector<std::size_t>& offsets, const std::vector<std::size_t>& sizes) {
    static_assert(K::state.size() <= kMaxState && K::scalars.size() <= kMaxScalar, "kernel needs more slots");
    static_assert(std::is_trivially_copyable_v<typename K::Coef>, "Coef must be plain data");
    thread_local std::vector<typename K::Coef> coefs;  // reused: no allocation per step
    coefs.resize(tensors.size());
    Situation last;
    for (std::size_t t = 0; t < tensors.size(); ++t) {
        TensorRef& r = tensors[t];
        const Situation now(r);
        if (t > 0 && now.same_as(last)) {
            coefs[t] = coefs[t - 1];
            last.advance(r);
        } else {
            coefs[t] = K::prepare(r.hyper, r.scalar, r.state);
            last = now;
            last.record_after(r);
        }
    }
    // A lambda does not capture a thread_local: the worker threads must see this thread's.
    const typename K::Coef* coef = coefs.data();
    const TensorRef* refs = tensors.data();
    parallel_pieces(offsets, sizes, [coef, refs](std::size_t t, std::size_t start, std::size_t count) {
        const TensorRef& r = refs[t];
        if (r.is_double) {
            double* s[kMaxState];
            for (int k = 0; k < kMaxState; ++k) s[k] = r.state[k] ? static_cast<double*>(r.state[k]) + start : nullptr;
            K::template update<double>(coef[t], static_cast<double*>(r.param) + start, static_cast<const double*>(r.grad) + start,
                                       s, count);
        } else {
            float* s[kMaxState];
            for (int k = 0; k < kMaxState; ++k) s[k] = r.state[k] ? static_cast<float*>(r.state[k]) + start : nullptr;
            K::template update<float>(coef[t], static_cast<float*>(r.param) + start, static_cast<const float*>(r.grad) + start, s,
                                      count);
        }
    });
}

// with_flags(f, a, b, ...) calls f(std::bool_constant<a>{}, std::bool_constant<b>{}, ...):
// a kernel branches on its options once, outside the element loop, and each
// combination gets its own branch-free, vectorized loop.
template <class F>
inline void with_flags(F&& f) {
    f();
}
template <class F, class... Rest>
inline void with_flags(F&& f, bool first, Rest... rest) {
    if (first)
        with_flags([&](auto... c) { f(std::true_type{}, c...); }, rest...);
    else
        with_flags([&](auto... c) { f(std::false_type{}, c...); }, rest...);
}

// NaN-propagating maximum, like numpy.maximum and torch.maximum.
template <class T>
inline T nan_max(T a, T b) {
    return (a > b || a != a) ? a : b;
}

}  // namespace FUSEDOPT_TARGET_NAMESPACE
}  // namespace fusedopt
