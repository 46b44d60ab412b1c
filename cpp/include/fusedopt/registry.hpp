// The table of fused kernels, by name: the binding finds a kernel here, with the names
// of the inputs it declares (fusedopt._core.kernels shows them to Python).
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
    const Hyper* hyper;  // the param-group keys it reads, in order, with their widths
    int n_hyper_keys;
    int n_hyper;  // numbers over all its keys (a pair counts 2)
    const char* const* state;
    int n_state;
    const char* const* scalars;
    int n_scalar;
};

// The kernel called `name`, or nullptr.
const KernelInfo* find_kernel(const std::string& name);
// Every registered kernel, for listings and errors.
const std::vector<KernelInfo>& all_kernels();

}  // namespace fusedopt
