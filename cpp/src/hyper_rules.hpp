// The one validator of fusedopt's hyperparameters. An optimizer class hands its table of
// rules (fusedopt/rules.py) to HyperRules once, when the class is created; HyperRules
// checks that the table agrees with what the class's kernel declares (names, widths,
// order) and then checks param groups with it: at construction, in add_param_group and
// load_state_dict, and at every step of either backend, before anything is written.
// The step reads the kernel's values out of the groups in the same pass.
#pragma once

#include <pybind11/pybind11.h>

#include <cstddef>
#include <string>
#include <vector>

#include "fusedopt/registry.hpp"

namespace fusedopt {

namespace py = pybind11;

class HyperRules {
public:
    // rules: one tuple per key of the class's table, in its order:
    //   (name, kind "real" | "flag", width, low, high, high_open, must, requires[, bounds])
    // where `must` completes "it must be ..." and `requires` is a sequence of
    // (other key, operator, value) that must hold when a flag is True; `bounds`, when
    // given and not empty, is the range of each number of a real key, one
    // (low, high, low_open, high_open, must) per number (Rprop's etas: (0, 1) and > 1).
    // An empty kernel name: a class that steps itself (no Plan kernel); every key is then
    // read by the Python side only.
    HyperRules(const std::string& kernel, py::sequence rules);

    bool has_kernel() const { return kernel_ != nullptr; }
    const KernelInfo& kernel() const { return *kernel_; }

    // Reads and checks the first n_groups groups of `groups` (a sequence of mappings) and
    // writes the kernel's values, group after group, to out[n_groups * kernel().n_hyper].
    // TypeError / ValueError name the group and the key. Called on every step.
    void read_groups(py::handle groups, std::size_t n_groups, double* out) const;

    // Checks one group; `where` prefixes every message (e.g. "param_groups[1]: ").
    void check(py::handle group, const std::string& where) const;

    // The rule names, in table order (for the stubs and messages).
    std::vector<std::string> names() const;

private:
    enum class Op { gt, ge, lt, le, eq, ne };
    struct Requirement {
        std::size_t rule;  // the rule whose (first) value is compared
        Op op;
        double value;
        std::string text;  // "momentum > 0"
    };
    struct Bound {  // the range of one number of a real key
        double low, high;
        bool low_open, high_open;
        std::string must;
    };
    struct Rule {
        py::object key;  // interned str
        std::string name;
        bool flag;
        int width;
        double low, high;
        bool high_open;
        std::string must;
        std::vector<Bound> bounds;  // one per number (real keys)
        int value_offset;           // where its values start among all of the table's values
        int kernel_offset;          // where the kernel reads them, or -1 (a key only the Python side reads)
        std::vector<Requirement>
            requires;
    };

    template <class Where>
    void read_group(PyObject* group, double* values, const Where& where) const;

    const KernelInfo* kernel_;
    std::vector<Rule> rules_;
    int n_values_ = 0;  // values over the whole table
};

void register_hyper_rules(py::module_& m);

}  // namespace fusedopt
