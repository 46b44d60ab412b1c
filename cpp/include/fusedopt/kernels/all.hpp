// Every fused kernel, in one list: the registry reads their declared inputs from it and
// each compiled target instantiates their step functions from it, in this order.
// Adding an algorithm is its header plus one entry here.
#pragma once

#include "fusedopt/kernels/adadelta.hpp"
#include "fusedopt/kernels/adagrad.hpp"
#include "fusedopt/kernels/adam.hpp"
#include "fusedopt/kernels/adam_hd.hpp"
#include "fusedopt/kernels/adamax.hpp"
#include "fusedopt/kernels/adamw_schedulefree.hpp"
#include "fusedopt/kernels/asgd.hpp"
#include "fusedopt/kernels/lamb.hpp"
#include "fusedopt/kernels/lars.hpp"
#include "fusedopt/kernels/lion.hpp"
#include "fusedopt/kernels/nadam.hpp"
#include "fusedopt/kernels/prodigy.hpp"
#include "fusedopt/kernels/radam.hpp"
#include "fusedopt/kernels/rmsprop.hpp"
#include "fusedopt/kernels/rprop.hpp"
#include "fusedopt/kernels/sgd.hpp"
#include "fusedopt/kernels/sgd_hd.hpp"
#include "fusedopt/kernels/sgd_schedulefree.hpp"
#include "fusedopt/types.hpp"

namespace fusedopt {
inline namespace FUSEDOPT_TARGET_NAMESPACE {

using AllKernels =
    KernelList<kernels::SGD, kernels::Adam, kernels::Adagrad, kernels::RMSprop, kernels::Adadelta, kernels::Adamax,
               kernels::NAdam, kernels::RAdam, kernels::Lion, kernels::LAMB, kernels::LARS, kernels::ASGD, kernels::Rprop,
               kernels::SGDScheduleFree, kernels::AdamWScheduleFree, kernels::Prodigy, kernels::SGDHD, kernels::AdamHD>;

}  // namespace FUSEDOPT_TARGET_NAMESPACE
}  // namespace fusedopt
