"""Trajectories against torch.optim itself, when PyTorch is installed (never a dependency)."""

from __future__ import annotations

import numpy as np
import pytest

from .table import CONFIGS

torch = pytest.importorskip("torch")


@pytest.fixture(autouse=True)
def _torch_scalar_state_in_float64():
    """torch keeps scalar state (``step``, NAdam's ``mu_product``) in its default dtype,
    float32 unless changed; fusedopt keeps it in float64, as the contract says."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)


@pytest.mark.parametrize(("cls", "kwargs"), CONFIGS)
def test_matches_torch_optim_step_for_step(cls, kwargs, backend, rng):
    tcls = getattr(torch.optim, cls.__name__, None)
    if tcls is None:
        pytest.skip(f"torch.optim has no {cls.__name__}")
    shapes = [(9, 4), (5,), ()]
    p0 = [rng.standard_normal(s) for s in shapes]
    ours = [p.copy() for p in p0]
    theirs = [torch.tensor(p, requires_grad=True) for p in p0]
    opt = cls(
        [{"params": ours[:2]}, {"params": ours[2:], "lr": kwargs["lr"] / 3}],
        backend=backend,
        **kwargs,
    )
    topt = tcls(
        [{"params": theirs[:2]}, {"params": theirs[2:], "lr": kwargs["lr"] / 3}],
        foreach=False,
        **kwargs,
    )
    for _ in range(30):
        grads = [rng.standard_normal(s) for s in shapes]
        opt.step(grads)
        for t, g in zip(theirs, grads, strict=True):
            t.grad = torch.tensor(g)
        topt.step()
        for p, t in zip(ours, theirs, strict=True):
            np.testing.assert_allclose(p, t.detach().numpy(), rtol=1e-10, atol=1e-12)
