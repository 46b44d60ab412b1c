// The table of fused kernels, by name: the binding finds a kernel here.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "fusedopt/kernel.hpp"

namespace fusedopt {

using StepFn = void (*)(std::vector<TensorRef>&, const std::vector<std::size_t>&, const std::vector<std::size_t>&);

struct KernelInfo {
    const char* name;
    StepFn step;
    int n_hyper, n_state, n_scalar;
};

// The kernel called `name`, or nullptr.
const KernelInfo* find_kernel(const std::string& name);
// Every registered kernel, for listings and errors.
const std::vector<KernelInfo>& all_kernels();

}  // namespace fusedopt
