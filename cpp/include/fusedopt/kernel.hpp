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
//   struct Coef;   // per-tensor constants, among them `double grad_scale`: the factor
//                  // every grad element is multiplied by as it is read (-1 with maximize;
//                  // run_step multiplies in the clip factor of max_grad_norm)
//   static Coef prepare(const double* hyper, double* const* scalar, void* const* state);
//       // once per tensor per step, before the element loop: advances the scalar
//       // state (step counts, running products) and computes every element-
//       // independent quantity in double precision. It must depend on nothing but
//       // the hyperparameters, the scalar state and which state arrays are present:
//       // run_step reuses its result for the next tensor of the same group in the
//       // same situation (a model of many tensors pays for pow() once per group).
//   template <class T, class P, class G>
//   static void update(const Coef&, P p, G g, T* const* s, std::size_t n);
//       // the element loop over n elements; s[k] is null where state k is absent.
//       // p and g are T* and const T*, or (a bfloat16 parameter, mixed.hpp) objects
//       // whose p[i] / g[i] read as T and p[i] = x writes: the loop reads p[i] and
//       // g[i] as values (T pi = p[i], or in arithmetic; a function template taking
//       // T gets T(p[i])) and writes each p[i] at most once, after its reads.
//   struct Index { static constexpr int lr = at(hyper, "lr"), beta2 = at(hyper, "betas", 1),
//                  exp_avg = at(state, "exp_avg"), step = at(scalars, "step"); };
//       // where each input sits, found by name at compile time (a static constexpr
//       // initializer is a constant expression: a name the tables do not declare does
//       // not compile); prepare and update read h[Index::lr], s[Index::exp_avg], ...
// A kernel that needs per-tensor sums before its update (a trust ratio from norms, as
// LAMB and LARS) also declares:
//   static constexpr int n_sums = 2;                    // how many float64 sums per tensor
//   template <class T> static void sums(const Coef&, const T* p, const T* g, T* const* s,
//                                       std::size_t n, double* out);
//       // adds the partial sums of elements [0, n) into out[0..n_sums), in kLanes running
//       // sums (reduce.hpp: for_lanes), so that they do not depend on the thread count;
//       // it may write state that only it and update() use (LAMB's new moments).
//   static void finish(Coef&, const double* sums);      // per tensor, with its totals
// run_step runs that pass through parallel_sums, in the same native call as the update.
// A kernel whose constants need sums over several tensors (a learning rate adapted per
// param group by hypergradient descent, Prodigy's d over every group) declares n_sums and
// sums() as above and, instead of finish():
//   static constexpr std::array group_values{"lr", ...};  // param-group keys it reads and may
//       // rewrite: read by the binding as floats (None or a missing key: NaN; inf stays),
//       // not checked by the rules (the optimizer class checks them)
//   static void combine(Coef* coefs, const double* totals, const TensorRef* refs, std::size_t n,
//                       const GroupValues& groups);
//       // once per step, serially, after the sums: totals[t * n_sums + j] are tensor t's
//       // sums (the same bits on any thread count), refs[t].group its param group; it
//       // completes every coefs[t] for the update and may rewrite groups.values, which the
//       // binding writes back to the group dicts (those that changed) after the step.
// and, when the sums pass itself needs numbers from other groups (Prodigy: group 0's d, the
// largest lr), optionally
//   static void begin(Coef* coefs, const TensorRef* refs, std::size_t n, const GroupValues& groups);
//       // after prepare() (and the clip factor), before the sums.
// Every kernel without group_values is run exactly as before.
// Python reads the same declarations (fusedopt._core.kernels) and checks each optimizer
// class's table against them when the class is created, at import.
#pragma once

#include <array>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <limits>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "fusedopt/mixed.hpp"
#include "fusedopt/parallel.hpp"
#include "fusedopt/reduce.hpp"
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

// Whether kernel K has a reduction pass (see the top of this file), and how many sums.
template <class K, class = void>
struct sums_of : std::integral_constant<int, 0> {};
template <class K>
struct sums_of<K, std::void_t<decltype(K::n_sums)>> : std::integral_constant<int, K::n_sums> {};

// Whether kernel K has group values (see the top of this file), and whether a begin() hook.
template <class K, class = void>
struct has_group_values : std::false_type {};
template <class K>
struct has_group_values<K, std::void_t<decltype(K::group_values)>> : std::true_type {};
template <class K, class = void>
struct has_begin : std::false_type {};
template <class K>
struct has_begin<K, std::void_t<decltype(&K::begin)>> : std::true_type {};

// K's group-value keys and their count (none for most kernels).
template <class K>
std::pair<const char* const*, int> group_values_of() {
    if constexpr (has_group_values<K>::value)
        return {K::group_values.data(), static_cast<int>(K::group_values.size())};
    else
        return {nullptr, 0};
}

// f(p, g, s, n) with tensor r's arrays as T from element `start` on: the parameter, the
// grad, the state pointers (null where absent).
template <class T, class F>
inline void on_piece(const TensorRef& r, std::size_t start, std::size_t count, F&& f) {
    T* s[kMaxState];
    for (int k = 0; k < kMaxState; ++k) s[k] = r.state[k] ? static_cast<T*>(r.state[k]) + start : nullptr;
    f(static_cast<T*>(r.param) + start, static_cast<const T*>(r.grad) + start, static_cast<T* const*>(s), count);
}

// Runs kernel K for one step over all tensors, in one native call:
//   1. with max_grad_norm (or track_grad_norm): one read-only pass computes the global L2
//      norm of the grads (parallel_sums: the same bits on any number of threads); it also
//      answers the non-finite guard. Without: the guard's own finiteness pass, if asked.
//   2. the per-tensor constants (serial, cheap);
//   3. a kernel with a reduction pass (LAMB, LARS): its per-tensor sums, then finish()
//      (or, with group values, begin() before the sums and combine() after them);
//   4. one parallel sweep over all elements.
// A tensor with half-precision or int8 arrays runs the same kernel through mixed.hpp:
// its block loop (widened to float32 in registers and stack buffers, narrowed back), or
// for a bfloat16 parameter with float32 state the kernel's loop over bfloat16 views.
// The clip factor reaches the kernels through Coef::grad_scale, which every kernel
// multiplies each grad element by as it reads it (the -1 of maximize, and the clip):
// T(+-factor) * g is exactly what torch's clip_grad_norm_ would have left in the grad
// (negated for maximize), and the grads are never written.
template <class K>
void run_step(std::vector<TensorRef>& tensors, const std::vector<std::size_t>& offsets, const std::vector<std::size_t>& sizes,
              StepControl& ctl) {
    static_assert(K::state.size() <= kMaxState && K::scalars.size() <= kMaxScalar, "kernel needs more slots");
    static_assert(std::is_trivially_copyable_v<typename K::Coef>, "Coef must be plain data");
    ctl.taken = true;
    ctl.norm = std::numeric_limits<double>::quiet_NaN();
    double scale = 1.0;
    if (ctl.want_norm || ctl.clip) {
        const double sq = grad_norm_sums(tensors, offsets, sizes, 2.0, nullptr);
        ctl.norm = std::sqrt(sq);
        // A finite sum of squares means every grad is finite; one that is not may also
        // be an overflow of finite float64 grads, which the exact check tells apart.
        if (ctl.skip_nonfinite && !std::isfinite(sq) && !grads_finite(tensors, offsets, sizes)) {
            ctl.taken = false;
            return;
        }
        if (ctl.clip) scale = clip_coefficient(ctl.max_norm, ctl.norm);
    } else if (ctl.skip_nonfinite && !grads_finite(tensors, offsets, sizes)) {
        ctl.taken = false;
        return;
    }
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
    if (scale != 1.0)
        for (auto& c : coefs) c.grad_scale *= scale;
    // A lambda does not capture a thread_local: the worker threads must see this thread's.
    const TensorRef* refs = tensors.data();
    if constexpr (has_group_values<K>::value) {
        static_assert(sums_of<K>::value > 0, "a kernel with group values has a sums pass");
        if constexpr (has_begin<K>::value) K::begin(coefs.data(), refs, tensors.size(), ctl.groups);
    }
    if constexpr (sums_of<K>::value > 0) {
        constexpr int NS = sums_of<K>::value;
        thread_local std::vector<double> totals;
        totals.assign(tensors.size() * NS, 0.0);
        const typename K::Coef* coef = coefs.data();
        parallel_sums<NS>(
            offsets, sizes, Combine::sum,
            [coef, refs](std::size_t t, std::size_t start, std::size_t count, double* out) {
                auto sums = [&](auto* p, auto* g, auto s, std::size_t m) { K::sums(coef[t], p, g, s, m, out); };
                if (is_mixed(refs[t]))
                    on_mixed_piece(refs[t], start, count, false, sums);
                else if (refs[t].is_double)
                    on_piece<double>(refs[t], start, count, sums);
                else
                    on_piece<float>(refs[t], start, count, sums);
            },
            totals.data());
        if constexpr (has_group_values<K>::value)
            K::combine(coefs.data(), totals.data(), refs, tensors.size(), ctl.groups);
        else
            for (std::size_t t = 0; t < tensors.size(); ++t) K::finish(coefs[t], totals.data() + t * NS);
    }
    const typename K::Coef* coef = coefs.data();
    parallel_pieces(offsets, sizes, [coef, refs](std::size_t t, std::size_t start, std::size_t count) {
        auto update = [&](auto p, auto g, auto s, std::size_t m) { K::update(coef[t], p, g, s, m); };
        if (is_mixed(refs[t]))
            on_mixed_update(refs[t], start, count, update);
        else if (refs[t].is_double)
            on_piece<double>(refs[t], start, count, update);
        else
            on_piece<float>(refs[t], start, count, update);
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

}  // namespace FUSEDOPT_TARGET_NAMESPACE
}  // namespace fusedopt
