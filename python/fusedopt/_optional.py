"""The one place where fusedopt imports the packages it can do without.

``import fusedopt`` needs NumPy only. Plots (matplotlib), progress bars (tqdm), the demo
data (scikit-learn), the demo's BLAS thread limit (threadpoolctl) and the PyTorch columns
of the benchmark (torch) are imported here, lazily, by the code that needs them:

* :func:`import_optional` when the feature cannot work without the package: it raises
  :class:`MissingDependencyError`, whose one-line message names the package, what needed
  it and the ``pip install`` command;
* :func:`optional_module` when the feature degrades without it (no progress bar, no
  thread limit, no torch column): it returns ``None``.

>>> from fusedopt._optional import import_optional
>>> np = import_optional("numpy", "this example")
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = [
    "DEMO_EXTRA_HINT",
    "EXTRAS",
    "MissingDependencyError",
    "import_optional",
    "install_hint",
    "optional_module",
    "pyplot",
]

#: The extra of ``fusedopt`` that installs each optional package (pyproject.toml's
#: ``[project.optional-dependencies]``); a package without one is installed by name.
EXTRAS: dict[str, str] = {
    "matplotlib": "plots",
    "tqdm": "progress",
    "scikit-learn": "demo",
    "threadpoolctl": "demo",
    "mpi4py": "mpi",
    "dask": "dask",
    "distributed": "dask",
    "ml_dtypes": "half",
}

#: How to install every optional dependency of the demo (data, plots, progress bars).
DEMO_EXTRA_HINT = 'pip install "fusedopt[demo]"'


class MissingDependencyError(ImportError):
    """An optional dependency (scikit-learn, matplotlib, ...) is not installed.

    The message names the missing package, what needed it, and the command that
    installs it.
    """


def install_hint(package: str, extra: str | None = None) -> str:
    """The command that installs ``package``: the ``fusedopt`` extra that holds it
    (``extra``, else the one in :data:`EXTRAS`), or the package itself."""
    extra = extra or EXTRAS.get(package)
    return f'pip install "fusedopt[{extra}]"' if extra else f"pip install {package}"


def import_optional(
    module: str, purpose: str, package: str | None = None, *, extra: str | None = None
) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming the extra.

    Args:
        module: the module to import, e.g. ``"sklearn.datasets"``.
        purpose: what needs it, for the message, e.g. ``"the digits data set"``.
        package: the name to install (default: the top-level module name).
        extra: the ``fusedopt`` extra to suggest (default: the package's, see
            :data:`EXTRAS`); the demo and the command line suggest ``"demo"``.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        name = package or module.split(".")[0]
        raise MissingDependencyError(
            f"{purpose} needs {name}, which is not installed: {install_hint(name, extra)}"
        ) from exc


def optional_module(module: str) -> ModuleType | None:
    """``module`` if it can be imported, else ``None`` (for features that degrade)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def pyplot(
    purpose: str = "plotting", *, extra: str | None = None, backend: str | None = None
) -> ModuleType:
    """``matplotlib.pyplot``, or :class:`MissingDependencyError`.

    Args:
        purpose: what plots, for the message.
        extra: the extra to suggest (see :func:`import_optional`).
        backend: a backend to select first, e.g. ``"Agg"`` where only files are written
            (the command line); default: matplotlib's choice.
    """
    if backend is not None:
        mpl = import_optional("matplotlib", purpose, extra=extra)
        mpl.use(backend)
    return import_optional("matplotlib.pyplot", purpose, "matplotlib", extra=extra)
