// The registry of fused kernels: their declared inputs (from kernels/all.hpp) and the step
// functions of the target in use, in the same order.
#include "fusedopt/registry.hpp"

#include <cstddef>
#include <stdexcept>

#include "fusedopt/kernels/all.hpp"
#include "fusedopt/target.hpp"

namespace fusedopt {

namespace {

template <class K>
KernelInfo describe(StepFn step) {
    const auto values = group_values_of<K>();
    return {K::name,
            step,
            K::hyper.data(),
            static_cast<int>(K::hyper.size()),
            total_width(K::hyper),
            K::state.data(),
            static_cast<int>(K::state.size()),
            K::scalars.data(),
            static_cast<int>(K::scalars.size()),
            values.first,
            values.second};
}

template <class... K>
std::vector<KernelInfo> describe_all(KernelList<K...>, const TargetTable& target) {
    if (target.n_steps != sizeof...(K)) throw std::logic_error("the target's table does not match kernels/all.hpp");
    std::size_t i = 0;
    return {describe<K>(target.steps[i++])...};  // a braced list is evaluated left to right
}

}  // namespace

const std::vector<KernelInfo>& all_kernels() {
    static const std::vector<KernelInfo> table = describe_all(AllKernels{}, active_target());
    return table;
}

const KernelInfo* find_kernel(const std::string& name) {
    for (const KernelInfo& k : all_kernels())
        if (name == k.name) return &k;
    return nullptr;
}

}  // namespace fusedopt
