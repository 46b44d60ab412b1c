// The table of fused kernels, by name: the binding finds a kernel here, with the names
// of the inputs it declares (fusedopt._core.kernels shows them to Python) and its step
// function compiled for the instruction-set target in use (target.hpp).
#pragma once

#include <string>
#include <vector>

#include "fusedopt/types.hpp"

namespace fusedopt {

struct KernelInfo {
    const char* name;
    StepFn step;         // of the target in use
    const Hyper* hyper;  // the param-group keys it reads, in order, with their widths
    int n_hyper_keys;
    int n_hyper;  // numbers over all its keys (a pair counts 2)
    const char* const* state;
    int n_state;
    const char* const* scalars;
    int n_scalar;
    const char* const* group_values;  // param-group keys it reads and may rewrite (kernel.hpp)
    int n_group_values;
};

// The kernel called `name`, or nullptr.
const KernelInfo* find_kernel(const std::string& name);
// Every registered kernel, for listings and errors.
const std::vector<KernelInfo>& all_kernels();

}  // namespace fusedopt
