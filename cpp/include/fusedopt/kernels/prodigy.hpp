// Prodigy (Mishchenko & Defazio 2023), exactly prodigyopt 1.1.2's step: Adam whose step
// size d is estimated from the distance travelled, over all tensors of all groups.
// Group 0 holds the global numbers (betas, beta3, d, d_max, d_numerator, d_coef,
// growth_rate, use_bias_correction, decouple), lr is the largest of the groups' lrs, and
// each group has its own eps, weight_decay, d0 and safeguard_warmup (as the package reads them):
//   dlr = d * lr * (use_bias_correction ? sqrt(1 - beta2^(k+1)) / (1 - beta1^(k+1)) : 1)
//   sums pass (groups with lr > 0), with g += weight_decay * p when not decouple:
//     num += (d / d0) * dlr * <g, p0 - p>     (each product in the tensor's type, summed in float64)
//     m = beta1 m + d (1 - beta1) g;   v = beta2 v + d^2 (1 - beta2) g^2
//     s = beta3 s + (d / d0) * (safeguard_warmup ? d : dlr) * g;   den += sum |s|
//   combine: if den == 0 nothing more (no update, k and step unchanged); else
//     d_numerator = beta3 d_numerator + num;   d_hat = d_coef d_numerator / den
//     if d == d0 (of the last group): d = max(d, d_hat)
//     d_max = max(d_max, d_hat);   d = min(d_max, d * growth_rate);   k += 1 per group
//   update pass (every tensor with a grad), with the new d and the old dlr:
//     decouple: p = p - weight_decay * dlr * p
//     p = p - dlr * m / (sqrt(v) + d eps)      (beta1 == 0: p - dlr d g / (sqrt(v) + d eps))
// exp_avg exists only when beta1 > 0; the sums are float64, the same bits on any thread count.
#pragma once

#include <algorithm>
#include <cmath>

#include "fusedopt/kernel.hpp"
#include "fusedopt/lane_sums.hpp"

namespace fusedopt {
inline namespace FUSEDOPT_TARGET_NAMESPACE {
namespace kernels {

struct Prodigy {
    static constexpr const char* name = "prodigy";
    static constexpr std::array hyper{Hyper{"lr"},
                                      Hyper{"betas", 2},
                                      Hyper{"eps"},
                                      Hyper{"weight_decay"},
                                      Hyper{"decouple"},
                                      Hyper{"use_bias_correction"},
                                      Hyper{"safeguard_warmup"},
                                      Hyper{"d0"},
                                      Hyper{"d_coef"}};
    static constexpr std::array state{"s", "p0", "exp_avg", "exp_avg_sq"};
    static constexpr std::array scalars{"step"};
    static constexpr std::array group_values{"beta3", "growth_rate", "d", "d_max", "d_numerator", "k", "d_denom", "d_hat"};
    static constexpr int n_hyper = total_width(hyper);
    static constexpr int n_values = static_cast<int>(group_values.size());
    struct Index {
        static constexpr int lr = at(hyper, "lr"), beta1 = at(hyper, "betas", 0), beta2 = at(hyper, "betas", 1),
                             eps = at(hyper, "eps"), weight_decay = at(hyper, "weight_decay"), decouple = at(hyper, "decouple"),
                             bias_correction = at(hyper, "use_bias_correction"), safeguard = at(hyper, "safeguard_warmup"),
                             d0 = at(hyper, "d0"), d_coef = at(hyper, "d_coef"), s = at(state, "s"), p0 = at(state, "p0"),
                             exp_avg = at(state, "exp_avg"), exp_avg_sq = at(state, "exp_avg_sq"), step = at(scalars, "step"),
                             beta3 = at(group_values, "beta3"), growth_rate = at(group_values, "growth_rate"),
                             d = at(group_values, "d"), d_max = at(group_values, "d_max"),
                             d_numerator = at(group_values, "d_numerator"), k = at(group_values, "k"),
                             d_denom = at(group_values, "d_denom"), d_hat = at(group_values, "d_hat");
    };
    struct Coef {
        // the sums pass
        bool active, coupled;
        double beta1, beta2, beta3, m_coef, v_coef, s_coef, num_coef, weight_decay;
        // the update pass
        bool skip, decoupled;
        double decay, step, step_g, d_eps, grad_scale;
    };
    static constexpr int n_sums = 2;  // <g, p0 - p>, sum |s|

    static Coef prepare(const double* /*h*/, double* const* /*scalar*/, void* const* /*state*/) {
        Coef c{};
        c.grad_scale = 1.0;
        c.skip = true;
        return c;
    }

    static const double* hyper_of(const GroupValues& gv, int g) { return gv.hyper + static_cast<std::ptrdiff_t>(g) * n_hyper; }
    static double* values_of(const GroupValues& gv, int g) { return gv.values + static_cast<std::ptrdiff_t>(g) * n_values; }
    static double beta3_of(const GroupValues& gv) {
        const double b3 = values_of(gv, 0)[Index::beta3];
        return std::isnan(b3) ? std::sqrt(hyper_of(gv, 0)[Index::beta2]) : b3;
    }
    static double largest_lr(const GroupValues& gv) {
        double lr = hyper_of(gv, 0)[Index::lr];
        for (int g = 1; g < gv.n_groups; ++g) lr = std::max(lr, hyper_of(gv, g)[Index::lr]);
        return lr;
    }
    static double dlr_of(const GroupValues& gv) {
        const double* h0 = hyper_of(gv, 0);
        const double k = values_of(gv, 0)[Index::k], beta1 = h0[Index::beta1], beta2 = h0[Index::beta2];
        const double bc = h0[Index::bias_correction] != 0.0
                              ? std::sqrt(1.0 - std::pow(beta2, k + 1.0)) / (1.0 - std::pow(beta1, k + 1.0))
                              : 1.0;
        return values_of(gv, 0)[Index::d] * largest_lr(gv) * bc;
    }

    static void begin(Coef* coefs, const TensorRef* refs, std::size_t n, const GroupValues& gv) {
        const double* h0 = hyper_of(gv, 0);
        const double beta1 = h0[Index::beta1], beta2 = h0[Index::beta2], beta3 = beta3_of(gv);
        const double d = values_of(gv, 0)[Index::d], dlr = dlr_of(gv);
        const bool decouple = h0[Index::decouple] != 0.0;
        for (std::size_t t = 0; t < n; ++t) {
            const double* h = refs[t].hyper;
            Coef& c = coefs[t];
            const double d0 = h[Index::d0], wd = h[Index::weight_decay];
            c.active = h[Index::lr] > 0.0;
            c.coupled = wd != 0.0 && !decouple;
            c.weight_decay = wd;
            c.beta1 = beta1;
            c.beta2 = beta2;
            c.beta3 = beta3;
            c.m_coef = d * (1.0 - beta1);
            c.v_coef = d * d * (1.0 - beta2);
            c.num_coef = (d / d0) * dlr;
            c.s_coef = h[Index::safeguard] != 0.0 ? (d / d0) * d : (d / d0) * dlr;
        }
    }

    // Elements [0, n) of the sums pass: the new m, v and s, and dot[i] = g_i (p0_i - p_i),
    // abs_s[i] = |s_i|.
    template <class T, bool Coupled, bool HasM>
    static void sums_chunk(const Coef& c, const T* __restrict p, const T* __restrict g, const T* __restrict p0, T* __restrict sv,
                           T* __restrict m, T* __restrict v, T* __restrict dot, T* __restrict abs_s, std::size_t n) {
        const T gs = static_cast<T>(c.grad_scale), wd = static_cast<T>(c.weight_decay);
        const T b1 = static_cast<T>(c.beta1), b2 = static_cast<T>(c.beta2), b3 = static_cast<T>(c.beta3);
        const T mc = static_cast<T>(c.m_coef), vc = static_cast<T>(c.v_coef), sc = static_cast<T>(c.s_coef);
        for (std::size_t i = 0; i < n; ++i) {
            T gi = gs * g[i];
            if constexpr (Coupled) gi = gi + wd * p[i];
            dot[i] = gi * (p0[i] - p[i]);
            if constexpr (HasM) m[i] = b1 * m[i] + mc * gi;
            v[i] = b2 * v[i] + vc * (gi * gi);
            const T si = b3 * sv[i] + sc * gi;
            sv[i] = si;
            abs_s[i] = std::fabs(si);
        }
    }

    template <class T>
    static void sums(const Coef& c, const T* p, const T* g, T* const* s, std::size_t n, double* out) {
        if (!c.active) return;
        T* sv = s[Index::s];
        const T* p0 = s[Index::p0];
        T* m = s[Index::exp_avg];
        T* v = s[Index::exp_avg_sq];
        double acc[2][kLanes] = {};  // <g, p0 - p>, |s|
        chunked_lane_sums<2, T>(n, acc, [&](std::size_t i, std::size_t len, T* buf) {
            T* dot = buf;
            T* abs_s = buf + kSumChunk;
            T* mi = m ? m + i : nullptr;
            if (c.coupled && m)
                sums_chunk<T, true, true>(c, p + i, g + i, p0 + i, sv + i, mi, v + i, dot, abs_s, len);
            else if (c.coupled)
                sums_chunk<T, true, false>(c, p + i, g + i, p0 + i, sv + i, mi, v + i, dot, abs_s, len);
            else if (m)
                sums_chunk<T, false, true>(c, p + i, g + i, p0 + i, sv + i, mi, v + i, dot, abs_s, len);
            else
                sums_chunk<T, false, false>(c, p + i, g + i, p0 + i, sv + i, mi, v + i, dot, abs_s, len);
        });
        out[0] += lanes_total(acc[0]);
        out[1] += lanes_total(acc[1]);
    }

    static void combine(Coef* coefs, const double* totals, const TensorRef* refs, std::size_t n, const GroupValues& gv) {
        const double* h0 = hyper_of(gv, 0);
        double* v0 = values_of(gv, 0);
        const double beta3 = beta3_of(gv), lr = largest_lr(gv), dlr = dlr_of(gv);
        double delta = 0.0, den = 0.0;
        for (std::size_t t = 0; t < n; ++t) {
            if (!coefs[t].active) continue;
            delta += coefs[t].num_coef * totals[2 * t];
            den += totals[2 * t + 1];
        }
        if (den == 0.0) return;  // no progress: the package returns before the update (coefs stay skip)
        double d = v0[Index::d], d_max = v0[Index::d_max], d_hat = d, numerator = v0[Index::d_numerator] * beta3;
        if (lr > 0.0) {
            numerator = numerator + delta;
            d_hat = h0[Index::d_coef] * numerator / den;
            if (d == hyper_of(gv, gv.n_groups - 1)[Index::d0]) d = std::max(d, d_hat);
            d_max = std::max(d_max, d_hat);
            d = std::min(d_max, d * v0[Index::growth_rate]);
        }
        for (int g = 0; g < gv.n_groups; ++g) {
            double* vg = values_of(gv, g);
            vg[Index::d_numerator] = numerator;
            vg[Index::d_denom] = den;
            vg[Index::d] = d;
            vg[Index::d_max] = d_max;
            vg[Index::d_hat] = d_hat;
            vg[Index::k] = vg[Index::k] + 1.0;
        }
        const bool decouple = h0[Index::decouple] != 0.0;
        for (std::size_t t = 0; t < n; ++t) {
            const double* h = refs[t].hyper;
            Coef& c = coefs[t];
            c.skip = false;
            c.decoupled = decouple && h[Index::weight_decay] != 0.0;
            c.decay = -h[Index::weight_decay] * dlr;
            c.step = -dlr;
            c.step_g = -dlr * d;
            c.d_eps = d * h[Index::eps];
            c.coupled = h[Index::weight_decay] != 0.0 && !decouple;
            *refs[t].scalar[Index::step] += 1.0;
        }
    }

    template <class T, class P, class G>
    static void update(const Coef& c, P p, G g, T* const* s, std::size_t n) {
        if (c.skip) return;
        const T* __restrict m = s[Index::exp_avg];
        const T* __restrict v = s[Index::exp_avg_sq];
        const T decay = static_cast<T>(c.decay), step = static_cast<T>(c.step), step_g = static_cast<T>(c.step_g);
        const T d_eps = static_cast<T>(c.d_eps), gs = static_cast<T>(c.grad_scale), wd = static_cast<T>(c.weight_decay);
        with_flags(
            [&](auto decoupled, auto has_m, auto coupled) {
                for (std::size_t i = 0; i < n; ++i) {
                    T pi = p[i];
                    const T denom = std::sqrt(v[i]) + d_eps;
                    if constexpr (decoupled) pi = pi + decay * pi;
                    if constexpr (has_m) {
                        pi = pi + step * (m[i] / denom);
                    } else {
                        T gi = gs * g[i];
                        if constexpr (coupled) gi = gi + wd * p[i];
                        pi = pi + step_g * (gi / denom);
                    }
                    p[i] = pi;
                }
            },
            c.decoupled, m != nullptr, c.coupled);
    }
};

}  // namespace kernels
}  // namespace FUSEDOPT_TARGET_NAMESPACE
}  // namespace fusedopt
