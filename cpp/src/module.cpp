// fusedopt._core: wiring only; each area registers itself from its own file.
#include <pybind11/pybind11.h>

namespace py = pybind11;

namespace fusedopt {
void register_hyper_rules(py::module_& m);
void register_optim(py::module_& m);
void register_info(py::module_& m);
void register_bench(py::module_& m);
void register_grads(py::module_& m);
void register_adafactor(py::module_& m);
void register_average(py::module_& m);
void register_sparse(py::module_& m);
void register_lbfgs(py::module_& m);
void register_distributed(py::module_& m);
}  // namespace fusedopt

PYBIND11_MODULE(_core, m) {
    m.doc() = "fusedopt's native core: fused optimizer kernels and their thread setting.";
    fusedopt::register_hyper_rules(m);
    fusedopt::register_optim(m);
    fusedopt::register_info(m);
    fusedopt::register_bench(m);
    fusedopt::register_grads(m);
    fusedopt::register_adafactor(m);
    fusedopt::register_average(m);
    fusedopt::register_sparse(m);
    fusedopt::register_lbfgs(m);
    fusedopt::register_distributed(m);
}
