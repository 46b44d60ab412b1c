"""Fixtures shared by the whole suite, each declared once.

``rng`` (a fixed seed), ``backend`` (every test that takes it runs with both backends),
``dtype`` (float64 and float32), ``threads`` (1 and 2 pool threads) and ``rel`` (the
relative tolerance of a value worked out by hand, for that dtype). Shared code that is
not a fixture lives in the package's modules: ``table`` (configurations, signatures,
error cases), ``helpers`` and ``hypothesis_settings``.
"""

from __future__ import annotations

import numpy as np
import pytest

from .table import BACKENDS

#: Relative tolerance of a value computed by hand in double precision, by the dtype
#: the optimizer ran in (float32: a few units in the last place of a few operations).
REL = {np.dtype(np.float64): 1e-14, np.dtype(np.float32): 2e-6}


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261129)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Both backends: the fused kernels and the NumPy reference."""
    return request.param


@pytest.fixture(params=[np.float64, np.float32], ids=["f64", "f32"])
def dtype(request: pytest.FixtureRequest) -> type[np.floating]:
    return request.param


@pytest.fixture
def rel(dtype: type[np.floating]) -> float:
    """Relative tolerance of a hand-computed value for ``dtype``."""
    return REL[np.dtype(dtype)]


@pytest.fixture(params=[1, 2], ids=["1t", "2t"])
def threads(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """The test runs with 1 and with 2 threads of fusedopt's pool (restored after)."""
    import fusedopt

    before = fusedopt.get_num_threads()
    fusedopt.set_num_threads(request.param)
    yield request.param
    fusedopt.set_num_threads(before)
