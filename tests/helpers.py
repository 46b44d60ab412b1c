"""Helpers shared by several test files (fixtures live in ``conftest.py``).

* :func:`trajectory` / :func:`odd_trajectory` / :func:`by_hand` / :func:`assert_steps`:
  run an optimizer on a few elements and compare each step with values worked out by
  hand (the per-algorithm files, ``test_<algo>.py``);
* :func:`make`: an optimizer over four parameters of every kind, a few steps in;
* :func:`grads_for`: random grads for a list of parameters;
* :func:`fingerprint`: everything a failed call must leave as it was;
* :func:`needs`: an optional package that CI installs (MPI, Dask): skipped without it,
  except in CI (``CI=true``), where its absence fails the test.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

import numpy as np
import pytest

import fusedopt as fo

__all__ = [
    "assert_steps",
    "by_hand",
    "fingerprint",
    "grads_for",
    "make",
    "needs",
    "odd_trajectory",
    "trajectory",
]


def trajectory(
    cls: type[fo.Optimizer],
    backend: str,
    dtype: Any,
    p0: Sequence[float],
    grads: Sequence[Sequence[float]],
    *,
    lrs: Sequence[float] | None = None,
    **kwargs: Any,
) -> tuple[list[np.ndarray], fo.Optimizer]:
    """Steps one parameter ``p0`` (of ``dtype``) with ``grads`` (one sequence per step).

    Returns a copy of the parameter after each step, and the optimizer. ``lrs``: the lr
    written into the param group before each step (as a schedule would).
    """
    p = np.array(p0, dtype=dtype)
    opt = cls([p], backend=backend, **kwargs)
    out = []
    for k, g in enumerate(grads):
        if lrs is not None:
            opt.param_groups[0]["lr"] = lrs[k]
        opt.step([np.array(g, dtype=dtype)])
        out.append(p.copy())
    return out, opt


def odd_trajectory(
    cls: type[fo.Optimizer],
    backend: str,
    dtype: Any,
    p0: float,
    grads: Sequence[float],
    **kwargs: Any,
) -> tuple[list[np.ndarray], fo.Optimizer]:
    """:func:`trajectory` of ``[p0, -p0]`` with grads ``[g, -g]``. Every update rule is odd
    in (p, g): entry 1 must be exactly -entry 0 after every step (checked here)."""
    got, opt = trajectory(cls, backend, dtype, (p0, -p0), [(g, -g) for g in grads], **kwargs)
    for t, p in enumerate(got, start=1):
        assert p[1] == -p[0], f"step {t}: {p} is not odd"
    return got, opt


def by_hand(
    update: Callable[..., float],
    p0: Sequence[float],
    grads: Sequence[Sequence[float]],
    **hyper: Any,
) -> list[tuple[float, ...]]:
    """Runs ``update(p, g, t, state, **hyper) -> p`` (plain Python floats, ``t`` from 1)
    over ``grads`` for each element of ``p0``: the expected parameter after each step."""
    per_element = []
    for i, p in enumerate(p0):
        state: dict[str, float] = {}
        ps = []
        for t, g in enumerate(grads, start=1):
            p = update(p, g[i], t, state, **hyper)
            ps.append(p)
        per_element.append(ps)
    return [tuple(e[k] for e in per_element) for k in range(len(grads))]


def assert_steps(
    got: Sequence[np.ndarray],
    expected: Sequence[Sequence[float]],
    rel: float,
    abs_tol: float = 1e-300,
) -> None:
    """``expected[step][element]`` against ``got[step]``, element by element."""
    assert len(got) == len(expected)
    for step, (g, e) in enumerate(zip(got, expected, strict=True), start=1):
        assert len(g) == len(e)
        for i, ei in enumerate(e):
            assert float(g[i]) == pytest.approx(ei, rel=rel, abs=abs_tol), f"step {step}, [{i}]"


def grads_for(params: Sequence[np.ndarray], seed: int | np.random.Generator) -> list[np.ndarray]:
    """Standard-normal grads with the shape and dtype of each parameter."""
    rng = np.random.default_rng(seed)
    return [np.asarray(rng.standard_normal(p.shape), p.dtype) for p in params]


def make(
    cls: type[fo.Optimizer],
    kwargs: dict[str, Any],
    backend: str = "fused",
    seed: int = 0,
    steps: int = 0,
) -> tuple[list[np.ndarray], fo.Optimizer]:
    """An optimizer over four parameters (float64 2-d, float32 1-d, float64 0-d, float32
    Fortran-ordered 2-d) drawn from ``seed``, after ``steps`` steps (step k's grads
    drawn from ``seed + 1 + k``). Returns the parameters and the optimizer."""
    rng = np.random.default_rng(seed)
    params = [
        rng.standard_normal((4, 3)),
        rng.standard_normal(5).astype(np.float32),
        np.asarray(rng.standard_normal(())),
        np.asfortranarray(rng.standard_normal((3, 4)).astype(np.float32)),
    ]
    opt = cls(params, backend=backend, **kwargs)
    for k in range(steps):
        opt.step(grads_for(params, seed + 1 + k))
    return params, opt


def fingerprint(opt: fo.Optimizer, params: Sequence[np.ndarray]) -> Any:
    """The bytes and strides of every parameter, the bytes of every state array (under
    its index and name), the param groups and ``skipped_steps``: equal before and after
    a call that changed nothing."""
    sd = opt.state_dict()
    return (
        [(p.tobytes(), p.strides) for p in params],
        {i: {k: v.tobytes() for k, v in s.items()} for i, s in sd["state"].items()},
        repr(sd["param_groups"]),
        opt.skipped_steps,
    )


def needs(module: str, extra: str) -> ModuleType:
    """``module``, imported; without it the test is skipped, but in CI (``CI=true``,
    where ``.ci/run`` installs the ``extra``) it fails: a broken install must not pass as
    a run of skips."""
    if os.environ.get("CI") == "true":
        try:
            return __import__(module, fromlist=["_"])
        except ImportError as exc:  # pragma: no cover - only a broken CI install
            pytest.fail(f"CI installs fusedopt[{extra}], but {module} cannot be imported: {exc}")
    return pytest.importorskip(module)
