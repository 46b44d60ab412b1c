// One line per fused kernel: adding an algorithm is its header plus one entry here.
#include "fusedopt/registry.hpp"

#include "fusedopt/kernels/adadelta.hpp"
#include "fusedopt/kernels/adagrad.hpp"
#include "fusedopt/kernels/adam.hpp"
#include "fusedopt/kernels/adamax.hpp"
#include "fusedopt/kernels/lion.hpp"
#include "fusedopt/kernels/nadam.hpp"
#include "fusedopt/kernels/radam.hpp"
#include "fusedopt/kernels/rmsprop.hpp"
#include "fusedopt/kernels/sgd.hpp"

namespace fusedopt {

template <class K>
constexpr KernelInfo entry(const char* name) {
    return {name,
            &run_step<K>,
            K::hyper.data(),
            static_cast<int>(K::hyper.size()),
            total_width(K::hyper),
            K::state.data(),
            static_cast<int>(K::state.size()),
            K::scalars.data(),
            static_cast<int>(K::scalars.size())};
}

const std::vector<KernelInfo>& all_kernels() {
    static const std::vector<KernelInfo> table = {
        entry<kernels::SGD>("sgd"),         entry<kernels::Adam>("adam"),         entry<kernels::Adagrad>("adagrad"),
        entry<kernels::RMSprop>("rmsprop"), entry<kernels::Adadelta>("adadelta"), entry<kernels::Adamax>("adamax"),
        entry<kernels::NAdam>("nadam"),     entry<kernels::RAdam>("radam"),       entry<kernels::Lion>("lion"),
    };
    return table;
}

const KernelInfo* find_kernel(const std::string& name) {
    for (const KernelInfo& k : all_kernels())
        if (name == k.name) return &k;
    return nullptr;
}

}  // namespace fusedopt
