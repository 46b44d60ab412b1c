// The group-level coefficients of the Schedule-Free optimizers (Defazio et al. 2024),
// shared by SGDScheduleFree and AdamWScheduleFree: exactly the `schedulefree` package's
// (1.4.1) arithmetic, in double precision, from the group's values before the step
// (k, lr_max, weight_sum; the Python side writes their new values into the group after
// the step, with the same expressions):
//   sched = (k + 1) / warmup_steps if k < warmup_steps else 1;   lr = group lr * sched
//   lr_max = max(lr, lr_max);   weight = (k + 1)^r * lr_max^weight_lr_power
//   weight_sum = weight_sum + weight;   ckp1 = weight / weight_sum (0 when weight_sum is 0)
// and torch.lerp's formula (ATen/native/Lerp.h), the weight rounded to the element type:
//   lerp(a, b, w) = a + w * (b - a) if |w| < 0.5 else b - (b - a) * (1 - w)
#pragma once

#include <algorithm>
#include <cmath>

namespace fusedopt {
inline namespace FUSEDOPT_TARGET_NAMESPACE {
namespace kernels {

struct ScheduleFreeCoef {
    double lr;    // the warmup-scheduled learning rate
    double ckp1;  // the weight of z in the average x
};

inline ScheduleFreeCoef schedulefree_coef(double lr, double warmup_steps, double r, double weight_lr_power, double k,
                                          double lr_max, double weight_sum) {
    const double sched = k < warmup_steps ? (k + 1.0) / warmup_steps : 1.0;
    const double lr_t = lr * sched;
    const double lr_max_t = std::max(lr_t, lr_max);
    const double weight = std::pow(k + 1.0, r) * std::pow(lr_max_t, weight_lr_power);
    const double sum = weight_sum + weight;
    return {lr_t, sum == 0.0 ? 0.0 : weight / sum};
}

// torch.lerp of one element, the weight already in T (one of the two branches, chosen
// once per tensor: `big` is |w| >= 0.5, `one_minus_w` is T(1) - w).
template <bool Big, class T>
inline T lerp_elem(T a, T b, T w, T one_minus_w) {
    if constexpr (Big)
        return b - (b - a) * one_minus_w;
    else
        return a + w * (b - a);
}

}  // namespace kernels
}  // namespace FUSEDOPT_TARGET_NAMESPACE
}  // namespace fusedopt
