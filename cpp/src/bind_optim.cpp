// The binding of the fused optimizers: a Plan holds one optimizer's parameter and
// state arrays (checked once, when they are set) and runs a whole step, for every
// param group and every tensor, in one call. Shapes, dtypes and layouts are checked
// with the GIL held and before anything is written; the kernel runs without the GIL.
//
// Each step reads the hyperparameters straight from the param-group dicts, by key, and
// checks them with the optimizer class's rules (hyper_rules.hpp), before anything is written.
//
// Trust: every step re-checks that the parameter and state arrays are still the ones
// (same memory, dtype, size and layout) that were checked, refuses a grad that shares
// memory with any array the step writes, refuses non-finite hyperparameters, and
// serializes calls from several threads (a Plan's methods hold its mutex).
#define PY_ARRAY_UNIQUE_SYMBOL fusedopt_ARRAY_API
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <numpy/arrayobject.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "arrays.hpp"
#include "fusedopt/parallel.hpp"
#include "fusedopt/registry.hpp"
#include "fusedopt/target.hpp"
#include "hyper_rules.hpp"

namespace py = pybind11;

namespace fusedopt {
namespace {

// An array the kernel writes (a parameter or a state array): its extent, and what it is.
struct Written {
    Extent extent;
    std::size_t param;  // the parameter it is, or belongs to
    bool is_state;
    std::string what() const { return (is_state ? "the state of params[" : "params[") + std::to_string(param) + "]"; }
};

// Sorts `spans` by address and throws ValueError if two of them overlap.
void sort_and_check_disjoint(std::vector<Written>& spans) {
    std::sort(spans.begin(), spans.end(), [](const Written& a, const Written& b) { return a.extent.lo < b.extent.lo; });
    for (std::size_t k = 1; k < spans.size(); ++k)
        if (spans[k].extent.lo < spans[k - 1].extent.hi)
            throw py::value_error(spans[k - 1].what() + " and " + spans[k].what() +
                                  " share memory: every parameter and state array must have its own");
}

// The first of the sorted, disjoint `spans` that `e` intersects, or nullptr.
const Written* find_overlap(const std::vector<Written>& spans, const Extent& e) {
    if (e.empty()) return nullptr;
    auto it =
        std::upper_bound(spans.begin(), spans.end(), e.lo, [](std::uintptr_t lo, const Written& w) { return lo < w.extent.hi; });
    return it != spans.end() && it->extent.lo < e.hi ? &*it : nullptr;
}

// SplitMix64's finalizer (Steele, Lea & Flood 2014).
std::uint64_t splitmix64(std::uint64_t z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

// The key of stochastic rounding for parameter `index` at rounding step `step` (the NumPy
// reference derives the same: fusedopt.low_precision.rounding_key).
std::uint64_t rounding_key(std::uint64_t seed, std::uint64_t step, std::uint64_t index) {
    return splitmix64(splitmix64(splitmix64(seed) ^ step) ^ index);
}

// Holds a Plan's mutex for the length of a call. A call that finds the Plan busy (another
// thread is inside a step, without the GIL) waits for it without holding the GIL; a call
// from inside a call on the same thread (a grads sequence or a hyperparameter whose
// Python methods step the optimizer) is refused rather than deadlocked.
class Busy {
public:
    Busy(std::mutex& mu, std::atomic<std::thread::id>& owner) : mu_(mu), owner_(owner) {
        if (owner_.load() == std::this_thread::get_id())
            throw std::runtime_error("the optimizer was called again from inside its own step (re-entrant call)");
        if (!mu_.try_lock()) {
            py::gil_scoped_release nogil;
            mu_.lock();
        }
        owner_.store(std::this_thread::get_id());
    }
    ~Busy() {
        owner_.store(std::thread::id());
        mu_.unlock();
    }
    Busy(const Busy&) = delete;
    Busy& operator=(const Busy&) = delete;

private:
    std::mutex& mu_;
    std::atomic<std::thread::id>& owner_;
};

// What a checked array looked like, to notice at each step that it has been resized,
// reallocated, retyped or re-laid-out since (numpy lets Python code do all of these).
struct Snapshot {
    PyArrayObject* array;
    void* data;
    npy_intp size;
    int type;
    bool c_order;

    static Snapshot of(PyArrayObject* a, bool c_order) { return {a, PyArray_DATA(a), PyArray_SIZE(a), PyArray_TYPE(a), c_order}; }
    bool unchanged() const {
        return PyArray_DATA(array) == data && PyArray_SIZE(array) == size && PyArray_TYPE(array) == type &&
               PyArray_ISNOTSWAPPED(array) && PyArray_ISWRITEABLE(array) && same_layout(array, c_order);
    }
};

class Plan {
public:
    // rules: the optimizer class's hyperparameter rules, which name its kernel; every
    // step reads the kernel's values from the param groups through them.
    Plan(std::shared_ptr<const HyperRules> rules, py::sequence params, std::vector<int> group_of, int n_groups)
        : rules_(std::move(rules)), kernel_(rules_ && rules_->has_kernel() ? &rules_->kernel() : nullptr), n_groups_(n_groups) {
        if (!rules_) throw py::type_error("rules must be a HyperRules");
        if (n_groups < 1) throw py::value_error("n_groups must be at least 1");
        const std::size_t n = py::len(params);
        if (group_of.size() != n) throw py::value_error("group_of must have one entry per parameter");
        params_.reserve(n);
        for (std::size_t i = 0; i < n; ++i) {
            py::object p = params[i];
            if (!PyArray_Check(p.ptr()))
                throw py::type_error(item("params", i) + " must be a numpy.ndarray, got " + type_name(p.ptr()));
            auto* a = reinterpret_cast<PyArrayObject*>(p.ptr());
            const int dtype = param_dtype(a);
            if (dtype < 0)
                throw py::type_error(item("params", i) + " has dtype " + dtype_of(a) +
                                     "; fusedopt updates float32, float64, float16 and bfloat16 (ml_dtypes) arrays "
                                     "in the machine's byte order");
            if (!PyArray_ISWRITEABLE(a)) throw py::value_error(item("params", i) + " is read-only");
            const bool c_order = PyArray_IS_C_CONTIGUOUS(a);
            if (!same_layout(a, c_order))
                throw py::value_error(item("params", i) +
                                      " is not contiguous and aligned in memory (a strided view?); "
                                      "fusedopt updates contiguous arrays only");
            if (group_of[i] < 0 || group_of[i] >= n_groups) throw py::value_error("group index out of range");
            params_.push_back(p);
            c_order_.push_back(c_order);
            param_checks_.push_back(Snapshot::of(a, c_order));
            written_.push_back({extent_of(a), i, false});
            TensorRef r{};
            r.param = PyArray_DATA(a);
            r.size = static_cast<std::size_t>(PyArray_SIZE(a));
            r.is_double = dtype == kFloat64;
            r.param_type = r.state_type = static_cast<unsigned char>(dtype);
            r.group = group_of[i];
            refs_.push_back(r);
            sizes_.push_back(r.size);
        }
        sort_and_check_disjoint(written_);
        group_of_ = std::move(group_of);
        build_offsets(sizes_, offsets_);
        const int n_hyper = kernel_ ? kernel_->n_hyper : 0;
        hyper_.assign(static_cast<std::size_t>(n_groups_ * n_hyper), 0.0);
        for (std::size_t i = 0; i < n; ++i) refs_[i].hyper = hyper_.data() + static_cast<std::size_t>(group_of_[i] * n_hyper);
    }

    // state[i][k]: None or the k-th state array of params[i]; scalars[i][k]: None or a
    // float64 array of one element holding the k-th scalar state of params[i].
    // absmax[i][k]: None, or for int8 state k of params[i] its float32 block scales (one per
    // kQuantBlock elements); quant[k]: the code of state k when int8 (QuantCode).
    void set_state(py::sequence state, py::sequence scalars, py::object absmax, std::vector<int> quant) {
        Busy busy(mu_, owner_);
        require_kernel();
        const std::size_t n = params_.size();
        if (py::len(state) != n || py::len(scalars) != n) throw py::value_error("state and scalars need one entry per parameter");
        if (!absmax.is_none() && py::len(absmax) != n) throw py::value_error("absmax needs one entry per parameter");
        if (!quant.empty() && static_cast<int>(quant.size()) != kernel_->n_state)
            throw py::value_error("quant needs one code per state array of the kernel");
        for (int q : quant)
            if (q != kQuantLinear && q != kQuantExponent) throw py::value_error("quant codes are 1 (linear) or 2 (exponent)");
        check_params_unchanged();
        std::vector<py::object> keep;
        std::vector<Snapshot> checks;
        std::vector<Written> written;
        std::vector<TensorRef> refs = refs_;
        for (std::size_t i = 0; i < n; ++i) {
            auto* p = reinterpret_cast<PyArrayObject*>(params_[i].ptr());
            written.push_back({extent_of(p), i, false});
            py::sequence st = state[i], sc = scalars[i];
            if (static_cast<int>(py::len(st)) != kernel_->n_state || static_cast<int>(py::len(sc)) != kernel_->n_scalar)
                throw py::value_error(std::string("kernel '") + kernel_->name + "' takes " + std::to_string(kernel_->n_state) +
                                      " state arrays and " + std::to_string(kernel_->n_scalar) + " scalars per parameter");
            for (int k = 0; k < kMaxState; ++k) {
                refs[i].state[k] = nullptr;
                refs[i].absmax[k] = nullptr;
                refs[i].quant[k] = kQuantNone;
            }
            for (int k = 0; k < kMaxScalar; ++k) refs[i].scalar[k] = nullptr;
            refs[i].state_type = refs[i].param_type;
            int state_type = -1;  // of this parameter's state arrays, which must all agree
            for (int k = 0; k < kernel_->n_state; ++k) {
                py::object s = st[static_cast<std::size_t>(k)];
                if (s.is_none()) continue;
                const std::string what = "state of " + item("params", i);
                if (!PyArray_Check(s.ptr())) throw py::type_error(what + " must be a numpy.ndarray");
                auto* a = reinterpret_cast<PyArrayObject*>(s.ptr());
                const int type = PyArray_TYPE(a) == NPY_INT8 ? kInt8 : param_dtype(a);
                const bool half_param = refs[i].param_type >= kBFloat16;
                const bool allowed = type == refs[i].param_type || (half_param && type == kFloat32) || type == kInt8;
                if (!allowed || (state_type >= 0 && type != state_type) || !PyArray_ISNOTSWAPPED(a))
                    throw py::type_error(what + " has dtype " + dtype_of(a) + ", the parameter " + dtype_of(p) +
                                         " (state is the parameter's dtype, float32 for a half-precision parameter, "
                                         "or int8, the same for all its arrays)");
                state_type = type;
                if (type == kInt8) {
                    PyObject* am = absmax.is_none() ? nullptr : py::sequence(absmax[py::int_(i)])[py::int_(k)].ptr();
                    auto* b = am && PyArray_Check(am) ? reinterpret_cast<PyArrayObject*>(am) : nullptr;
                    const npy_intp blocks =
                        (PyArray_SIZE(p) + static_cast<npy_intp>(kQuantBlock) - 1) / static_cast<npy_intp>(kQuantBlock);
                    if (quant.empty() || !b || PyArray_TYPE(b) != NPY_FLOAT32 || PyArray_SIZE(b) != blocks ||
                        !PyArray_IS_C_CONTIGUOUS(b) || !PyArray_ISALIGNED(b) || !PyArray_ISWRITEABLE(b) ||
                        !PyArray_ISNOTSWAPPED(b))
                        throw py::type_error(what + ": int8 state needs a writeable float32 absmax array of " +
                                             std::to_string(blocks) + " blocks and its code");
                    if (overlaps(b, p) || overlaps(b, a)) throw py::value_error(what + ": absmax shares memory");
                    refs[i].absmax[k] = static_cast<float*>(PyArray_DATA(b));
                    refs[i].quant[k] = static_cast<unsigned char>(quant[static_cast<std::size_t>(k)]);
                    checks.push_back(Snapshot::of(b, true));
                    written.push_back({extent_of(b), i, true});
                    keep.push_back(py::reinterpret_borrow<py::object>(am));
                }
                if (!same_shape(a, p))
                    throw py::value_error(what + " has shape " + shape_of(a) + ", the parameter " + shape_of(p));
                if (!PyArray_ISWRITEABLE(a) || !same_layout(a, c_order_[i]))
                    throw py::value_error(what + " must be writeable and laid out like the parameter");
                if (overlaps(a, p)) throw py::value_error(what + " shares memory with the parameter");
                refs[i].state[k] = PyArray_DATA(a);
                refs[i].state_type = static_cast<unsigned char>(type);
                checks.push_back(Snapshot::of(a, c_order_[i]));
                written.push_back({extent_of(a), i, true});
                keep.push_back(s);
            }
            for (int k = 0; k < kernel_->n_scalar; ++k) {
                py::object s = sc[static_cast<std::size_t>(k)];
                if (s.is_none()) continue;
                auto* a = PyArray_Check(s.ptr()) ? reinterpret_cast<PyArrayObject*>(s.ptr()) : nullptr;
                if (!a || PyArray_TYPE(a) != NPY_FLOAT64 || PyArray_SIZE(a) != 1 || !PyArray_ISWRITEABLE(a) ||
                    !PyArray_ISALIGNED(a) || !PyArray_ISNOTSWAPPED(a))
                    throw py::type_error("scalar state of " + item("params", i) +
                                         " must be a writeable float64 array of one element");
                refs[i].scalar[k] = static_cast<double*>(PyArray_DATA(a));
                checks.push_back(Snapshot::of(a, true));
                written.push_back({extent_of(a), i, true});
                keep.push_back(s);
            }
        }
        sort_and_check_disjoint(written);
        refs_ = std::move(refs);
        state_refs_ = std::move(keep);
        state_checks_ = std::move(checks);
        written_ = std::move(written);
        ready_ = true;
    }

    // One step of the optimizer: grads checked, hyperparameters read, then one kernel call.
    // With skip_nonfinite, the step is skipped (nothing written) when a grad holds an inf
    // or a NaN. With max_grad_norm, the update sees the grads scaled as
    // clip_grad_norm_(grads, max_grad_norm) would scale them (the grads are not written);
    // with track_grad_norm alone, the norm is computed and nothing clipped. Returns
    // (whether the step was taken, the total L2 norm of the grads or NaN if not computed,
    // how many grads were None). A None grad skips its parameter: the kernel never sees it,
    // and it counts in no norm.
    // With `seed` (stochastic rounding), the writes of half-precision parameters round
    // stochastically with the bits of (seed, sr_step, parameter index, element index).
    py::tuple step(py::handle grads, py::handle groups, bool skip_nonfinite, std::optional<double> max_grad_norm,
                   bool track_grad_norm, std::optional<std::uint64_t> seed, std::uint64_t sr_step) {
        Busy busy(mu_, owner_);
        require_kernel();
        if (!ready_) throw py::value_error("the optimizer state has not been set");
        if (max_grad_norm && !(*max_grad_norm >= 0.0))
            throw py::value_error("max_grad_norm must be >= 0 or None, got " + std::to_string(*max_grad_norm));
        check_state_unchanged();
        for (std::size_t i = 0; i < refs_.size(); ++i) {  // before prepare_grads copies refs_
            refs_[i].stochastic = seed.has_value() && refs_[i].param_type >= kBFloat16;
            if (!refs_[i].stochastic) continue;
            const std::uint64_t key = rounding_key(*seed, sr_step, i);
            refs_[i].sr_key[0] = static_cast<unsigned>(key & 0xffffffffu);
            refs_[i].sr_key[1] = static_cast<unsigned>(key >> 32);
        }
        std::vector<py::object> copies;  // grads that had to be brought to the parameter's layout
        py::object seq = prepare_grads(grads, copies);
        read_hypers(groups);
        read_group_values(groups);
        StepControl ctl{skip_nonfinite,
                        track_grad_norm,
                        max_grad_norm.has_value(),
                        max_grad_norm.value_or(0.0),
                        0.0,
                        true,
                        GroupValues{hyper_.data(), group_values_.data(), n_groups_}};
        const std::size_t skipped = n_none_;
        if (skipped == 0) {
            py::gil_scoped_release nogil;
            kernel_->step(refs_, offsets_, sizes_, ctl);
        } else if (with_grads_.empty()) {  // nothing to step: as torch, whose clip_grad_norm_ of no grads is 0
            ctl.norm = (track_grad_norm || max_grad_norm) ? 0.0 : std::nan("");
        } else {
            py::gil_scoped_release nogil;
            kernel_->step(with_grads_, with_offsets_, with_sizes_, ctl);
        }
        if (ctl.taken) write_group_values(groups);
        return py::make_tuple(ctl.taken, ctl.norm, skipped);
    }

    // MultiSteps' running mean: accs[i] += (grads[i] - accs[i]) / count, for every
    // parameter, in one parallel sweep; the grads checked as step() checks them, the
    // accumulators (writeable, laid out as their parameters, disjoint from every array the
    // optimizer writes and from each other) before anything is written. Returns whether
    // every grad was finite.
    bool accumulate(py::sequence accs, py::handle grads, double count) {
        Busy busy(mu_, owner_);
        if (!(count >= 1.0)) throw py::value_error("count must be >= 1");
        const std::size_t n = params_.size();
        if (py::len(accs) != n) throw py::value_error("accs need one array per parameter");
        for (std::size_t i = 0; i < n; ++i)
            if (refs_[i].param_type >= kBFloat16)
                throw py::type_error(item("params", i) + " is " + dtype_of(reinterpret_cast<PyArrayObject*>(params_[i].ptr())) +
                                     ": accumulating grads (MultiSteps) takes float32 and float64 parameters");
        std::vector<Written> spans = written_;
        std::vector<TensorRef> work(n);
        std::vector<py::object> keep;
        for (std::size_t i = 0; i < n; ++i) {
            py::object o = accs[i];
            auto* p = reinterpret_cast<PyArrayObject*>(params_[i].ptr());
            auto* a = PyArray_Check(o.ptr()) ? reinterpret_cast<PyArrayObject*>(o.ptr()) : nullptr;
            if (!a || PyArray_TYPE(a) != PyArray_TYPE(p) || !PyArray_ISNOTSWAPPED(a) || !same_shape(a, p) ||
                !PyArray_ISWRITEABLE(a) || !same_layout(a, c_order_[i]))
                throw py::type_error(item("accs", i) + " must be a writeable array laid out as " + item("params", i));
            if (const Written* w = find_overlap(written_, extent_of(a)))
                throw py::value_error(item("accs", i) + " shares memory with " + w->what());
            spans.push_back({extent_of(a), i, true});
            work[i] = TensorRef{};
            work[i].param = PyArray_DATA(a);
            work[i].size = sizes_[i];
            work[i].is_double = refs_[i].is_double;
            keep.push_back(o);
        }
        sort_and_check_disjoint(spans);
        std::vector<py::object> copies;
        py::object seq = prepare_grads(grads, copies, nullptr, false);
        for (std::size_t i = 0; i < n; ++i) work[i].grad = refs_[i].grad;
        py::gil_scoped_release nogil;
        return active_target().accumulate_mean(work, offsets_, sizes_, count);
    }

    // The grads as the kernel would read them (checked; copied where the layout
    // differs from the parameter's). The NumPy backend steps with these. The
    // hyperparameters of the param `groups`, when given, are checked as step() checks them.
    py::list checked_grads(py::handle grads, py::handle groups) {
        Busy busy(mu_, owner_);
        if (ready_) check_state_unchanged();
        std::vector<py::object> copies;
        py::list used;
        prepare_grads(grads, copies, &used);
        if (!groups.is_none()) read_hypers(groups);
        return used;
    }

    // Whether every grad is finite (the grads checked as step() checks them).
    bool all_finite(py::handle grads) {
        Busy busy(mu_, owner_);
        std::vector<py::object> copies;
        py::object seq = prepare_grads(grads, copies);
        if (n_none_ && with_grads_.empty()) return true;
        py::gil_scoped_release nogil;
        return n_none_ == 0 ? active_target().grads_finite(refs_, offsets_, sizes_)
                            : active_target().grads_finite(with_grads_, with_offsets_, with_sizes_);
    }

    std::size_t size() const { return params_.size(); }
    std::size_t numel() const {
        std::size_t n = 0;
        for (std::size_t s : sizes_) n += s;
        return n;
    }
    std::string kernel() const { return kernel_ ? kernel_->name : ""; }

private:
    // ValueError if a parameter has been resized, reallocated, retyped, re-laid-out or made
    // read-only since it was checked: the kernel would write at stale addresses.
    void check_params_unchanged() const {
        for (std::size_t i = 0; i < param_checks_.size(); ++i) {
            if (param_checks_[i].unchanged()) continue;
            if (!PyArray_ISWRITEABLE(param_checks_[i].array)) throw py::value_error(item("params", i) + " has become read-only");
            throw py::value_error(item("params", i) +
                                  " has changed since it was given to the optimizer (resized, "
                                  "reallocated, or its dtype or memory layout changed); give the optimizer the new array");
        }
    }

    void check_state_unchanged() const {
        for (const Snapshot& c : state_checks_)
            if (!c.unchanged())
                throw py::value_error(
                    "a state array has changed since it was given to the optimizer (resized, reallocated, "
                    "made read-only, or its dtype or memory layout changed)");
    }

    void require_kernel() const {
        if (!kernel_) throw py::type_error("this optimizer steps itself: its Plan has no fused kernel");
    }

    // Checks every grad against its parameter and points the work list at it. `used`,
    // when given, receives the array each parameter will be stepped with (None for a
    // None grad, when allowed: that parameter is skipped). With some grads None (n_none_),
    // with_grads_ / with_offsets_ / with_sizes_ hold the work list of the others.
    py::object prepare_grads(py::handle grads, std::vector<py::object>& copies, py::list* used = nullptr,
                             bool allow_none = true) {
        if (PyArray_Check(grads.ptr()))
            throw py::type_error(
                "grads must be a sequence of arrays (one per parameter), got a single numpy.ndarray; wrap it in a list");
        // A tuple holds the grads alive while the kernel runs, whatever other threads do to a list.
        PyObject* fast = PySequence_Check(grads.ptr()) ? PySequence_Tuple(grads.ptr()) : nullptr;
        if (!fast) {
            if (PyErr_Occurred() && !PyErr_ExceptionMatches(PyExc_TypeError)) throw py::error_already_set();
            PyErr_Clear();
            throw py::type_error("grads must be a sequence of arrays (one per parameter), got " + type_name(grads.ptr()));
        }
        py::object seq = py::reinterpret_steal<py::object>(fast);
        const std::size_t n = static_cast<std::size_t>(PySequence_Fast_GET_SIZE(fast));
        if (n != params_.size())
            throw py::value_error("expected " + std::to_string(params_.size()) + " grads (one per parameter), got " +
                                  std::to_string(n));
        check_params_unchanged();
        std::size_t n_none = 0;
        for (std::size_t i = 0; i < n; ++i) {
            PyObject* g = PySequence_Fast_GET_ITEM(fast, static_cast<Py_ssize_t>(i));
            auto* p = reinterpret_cast<PyArrayObject*>(params_[i].ptr());
            if (g == Py_None && allow_none) {
                refs_[i].grad = nullptr;
                ++n_none;
                if (used) used->append(py::none());
                continue;
            }
            if (!PyArray_Check(g))
                throw py::type_error(item("grads", i) + " must be a numpy.ndarray" + (allow_none ? " or None" : "") + ", got " +
                                     type_name(g));
            auto* a = reinterpret_cast<PyArrayObject*>(g);
            if (PyArray_TYPE(a) != PyArray_TYPE(p))
                throw py::type_error(item("grads", i) + " has dtype " + dtype_of(a) + " but " + item("params", i) + " is " +
                                     dtype_of(p) + " (grads are not cast)");
            if (!same_shape(a, p))
                throw py::value_error(item("grads", i) + " has shape " + shape_of(a) + " but " + item("params", i) +
                                      " has shape " + shape_of(p));
            // Before any copy: a grad that is (a view of) an array the step writes would
            // change while it is read, and the grads are never modified.
            if (const Written* w = find_overlap(written_, extent_of(a)))
                throw py::value_error(item("grads", i) + " shares memory with " + w->what() +
                                      "; pass a copy (grads are never modified)");
            if (!PyArray_ISNOTSWAPPED(a) || !same_layout(a, c_order_[i])) {
                const int flags = (c_order_[i] ? NPY_ARRAY_C_CONTIGUOUS : NPY_ARRAY_F_CONTIGUOUS) | NPY_ARRAY_ALIGNED;
                PyObject* c = PyArray_FromAny(g, PyArray_DescrFromType(PyArray_TYPE(p)), 0, 0, flags, nullptr);
                if (!c) throw py::error_already_set();
                copies.push_back(py::reinterpret_steal<py::object>(c));
                a = reinterpret_cast<PyArrayObject*>(c);
                if (!same_shape(a, p) || !same_layout(a, c_order_[i]) || overlaps(a, p))  // an odd ndarray subclass
                    throw py::value_error(item("grads", i) + " could not be brought to the layout of " + item("params", i));
            }
            refs_[i].grad = PyArray_DATA(a);
            if (used) used->append(py::handle(reinterpret_cast<PyObject*>(a)));
        }
        n_none_ = n_none;
        if (n_none) {
            with_grads_.clear();
            with_sizes_.clear();
            for (std::size_t i = 0; i < n; ++i)
                if (refs_[i].grad) {
                    with_grads_.push_back(refs_[i]);
                    with_sizes_.push_back(sizes_[i]);
                }
            build_offsets(with_sizes_, with_offsets_);
        }
        return seq;
    }

    // Reads (and checks) the kernel's hyperparameters from every param group, by key.
    void read_hypers(py::handle groups) { rules_->read_groups(groups, static_cast<std::size_t>(n_groups_), hyper_.data()); }

    // Reads the kernel's group values (kernel.hpp) from every param group (after
    // read_hypers, which has checked that `groups` holds n_groups_ mappings): a number as
    // a float, None or a missing key as NaN. Keeps a copy to see which ones the step changed.
    void read_group_values(py::handle groups) {
        const int nv = kernel_->n_group_values;
        group_values_.assign(static_cast<std::size_t>(n_groups_ * nv), 0.0);
        if (nv == 0) return;
        for (int g = 0; g < n_groups_; ++g) {
            py::object group = groups[py::int_(g)];
            if (!PyDict_Check(group.ptr()))  // refused now: the write-back after the step must not fail
                throw py::type_error("param_groups[" + std::to_string(g) + "] must be a dict: the step writes its " +
                                     kernel_->group_values[0] + " back");
            for (int k = 0; k < nv; ++k) {
                const char* key = kernel_->group_values[k];
                double x = std::nan("");
                PyObject* v = PyMapping_Check(group.ptr()) && PyMapping_HasKeyString(group.ptr(), key)
                                  ? PyMapping_GetItemString(group.ptr(), key)
                                  : nullptr;
                if (v) {
                    py::object value = py::reinterpret_steal<py::object>(v);
                    if (!value.is_none()) {
                        x = PyFloat_AsDouble(v);
                        if (x == -1.0 && PyErr_Occurred()) {
                            PyErr_Clear();
                            throw py::type_error("param_groups[" + std::to_string(g) + "]: " + key + " must be a number, got " +
                                                 type_name(v));
                        }
                    }
                }
                group_values_[static_cast<std::size_t>(g * nv + k)] = x;
            }
        }
        group_values_before_ = group_values_;
    }

    // Writes the group values the step changed back to their groups: a float, or an int
    // where the group held an int and the new value is a whole number (Prodigy's k).
    void write_group_values(py::handle groups) {
        const int nv = kernel_->n_group_values;
        for (int g = 0; g < n_groups_ && nv > 0; ++g) {
            py::object group = groups[py::int_(g)];
            for (int k = 0; k < nv; ++k) {
                const std::size_t at = static_cast<std::size_t>(g * nv + k);
                const double x = group_values_[at];
                if (std::memcmp(&x, &group_values_before_[at], sizeof x) == 0) continue;
                const char* key = kernel_->group_values[k];
                py::object old = py::none();
                if (group.contains(key)) old = group[key];
                const bool whole = std::isfinite(x) && x == std::floor(x) && std::fabs(x) < 9.0e15;
                if (whole && PyLong_Check(old.ptr()) && !PyBool_Check(old.ptr()))
                    group[key] = py::int_(static_cast<long long>(x));
                else
                    group[key] = py::float_(x);
            }
        }
    }

    std::shared_ptr<const HyperRules> rules_;
    const KernelInfo* kernel_;
    int n_groups_;
    std::vector<py::object> params_;
    std::vector<bool> c_order_;
    std::vector<Snapshot> param_checks_, state_checks_;
    std::vector<Written> written_;  // params and state, sorted by address: what a grad may not share
    std::vector<int> group_of_;
    std::vector<TensorRef> refs_;
    std::vector<std::size_t> sizes_, offsets_;
    std::vector<double> hyper_;
    std::vector<double> group_values_, group_values_before_;  // kernels with group values
    std::vector<py::object> state_refs_;
    // The work list of the tensors that have a grad, when some grads are None.
    std::vector<TensorRef> with_grads_;
    std::vector<std::size_t> with_sizes_, with_offsets_;
    std::size_t n_none_ = 0;
    bool ready_ = false;
    std::mutex mu_;
    std::atomic<std::thread::id> owner_{};
};

}  // namespace

void register_optim(py::module_& m) {
    if (_import_array() < 0) throw py::error_already_set();
    py::class_<Plan>(m, "Plan", "The parameters and state of one optimizer, stepped by a fused kernel in one call.")
        .def(py::init<std::shared_ptr<const HyperRules>, py::sequence, std::vector<int>, int>(), py::arg("rules"),
             py::arg("params"), py::arg("group_of"), py::arg("n_groups"))
        .def("set_state", &Plan::set_state, py::arg("state"), py::arg("scalars"), py::arg("absmax") = py::none(),
             py::arg("quant") = std::vector<int>{})
        .def("step", &Plan::step, py::arg("grads"), py::arg("param_groups"), py::arg("skip_nonfinite") = false,
             py::arg("max_grad_norm") = py::none(), py::arg("track_grad_norm") = false, py::arg("seed") = py::none(),
             py::arg("sr_step") = 0)
        .def("accumulate", &Plan::accumulate, py::arg("accs"), py::arg("grads"), py::arg("count"))
        .def("checked_grads", &Plan::checked_grads, py::arg("grads"), py::arg("param_groups") = py::none())
        .def("all_finite", &Plan::all_finite, py::arg("grads"))
        .def("__len__", &Plan::size)
        .def_property_readonly("numel", &Plan::numel)
        .def_property_readonly("kernel", &Plan::kernel);
    // What each kernel declares it reads: the optimizer classes check their tables against it.
    py::dict kernels;
    for (const KernelInfo& k : all_kernels()) {
        py::list hyper, state, scalars;
        for (int i = 0; i < k.n_hyper_keys; ++i) hyper.append(py::make_tuple(k.hyper[i].name, k.hyper[i].width));
        for (int i = 0; i < k.n_state; ++i) state.append(k.state[i]);
        for (int i = 0; i < k.n_scalar; ++i) scalars.append(k.scalars[i]);
        py::list values;
        for (int i = 0; i < k.n_group_values; ++i) values.append(k.group_values[i]);
        py::dict info;
        if (k.n_group_values) info["group_values"] = py::tuple(values);
        info["hyperparameters"] = py::tuple(hyper);
        info["state"] = py::tuple(state);
        info["scalars"] = py::tuple(scalars);
        kernels[k.name] = info;
    }
    m.attr("kernels") = kernels;
}

}  // namespace fusedopt
