"""Prodigy, AdamHD and SGDHD (issue "LR-free and learned rates"): the fused steps against
fused Adam / SGD on one big tensor, and against their reference packages on many small
tensors, timed in interleaved rounds (A B C, A B C, ...; the order rotated every round)
so that a shared machine's noise hits every case alike. A case's figure is the median
over the rounds; a ratio is the median of the ratios within each round.

``big``: one tensor of 2^k float32 elements (``--size-log2``, default 25): fused Adam,
Prodigy, AdamHD, SGD and SGDHD. Goal: Prodigy and AdamHD <= 1.3x Adam's time.

``small``: ``--count`` tensors of ``--size`` float32 elements (default 1000 x 256):
fusedopt's Prodigy against ``prodigyopt.Prodigy`` 1.1.2, and fusedopt's AdamHD / SGDHD
against the authors' code (github.com/gbaydin/hypergradient-descent,
hypergrad/adam_hd.py and sgd_hd.py, ported below to torch 2's ``add_(x, alpha=...)``),
each on its own copy of the same arrays. Before timing, each pair is stepped 3 times
from the same start and compared. Goal: each >= 10x faster than its reference. Skipped
without torch (and Prodigy's without prodigyopt).

Each group runs at every ``--threads`` count (default 1 and fusedopt's default), torch
set alike::

    python benchmarks/lr_free_speed.py                          # 20 rounds
    python benchmarks/lr_free_speed.py --repeats 3 --size-log2 20 --min-time 0.02   # smoke
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

import numpy as np
from timing import Timed, paired, run_rounds

import fusedopt as fo

#: The hypergradient learning rates of the timed steps: small enough that the rate stays
#: sane over thousands of steps with the same grads (the work does not depend on it).
HD_BIG = 1e-13


# ------------------------------------------------- the authors' code, ported to torch 2
class AuthorsSGDHD:
    """hypergrad/sgd_hd.py's SGDHD step (one group), on torch tensors with .grad set."""

    def __init__(self, torch: Any, params: list[Any], lr: float, hypergrad_lr: float) -> None:
        self.torch, self.params = torch, params
        self.group = dict(lr=lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False)
        self.group["hypergrad_lr"] = hypergrad_lr
        self.state: dict[str, Any] = {}

    def step(self) -> None:
        torch, group, state = self.torch, self.group, self.state
        grad = torch.cat([p.grad.data.view(-1) for p in self.params], 0)
        if len(state) == 0:
            state["grad_prev"] = torch.zeros_like(grad)
        h = torch.dot(grad, state["grad_prev"])
        group["lr"] += group["hypergrad_lr"] * h
        state["grad_prev"] = grad
        offset = 0
        for p in self.params:
            n = p.numel()
            p.data.add_(grad[offset : offset + n].view_as(p.data), alpha=-group["lr"])
            offset += n


class AuthorsAdamHD:
    """hypergrad/adam_hd.py's AdamHD step (one group), on torch tensors with .grad set."""

    def __init__(self, torch: Any, params: list[Any], lr: float, hypergrad_lr: float) -> None:
        self.torch, self.params = torch, params
        self.group = dict(lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
        self.group["hypergrad_lr"] = hypergrad_lr
        self.state: dict[Any, dict[str, Any]] = {}

    def step(self) -> None:
        torch, group = self.torch, self.group
        for p in self.params:
            grad = p.grad.data
            state = self.state.setdefault(p, {})
            if len(state) == 0:
                state["step"] = 0
                state["exp_avg"] = torch.zeros_like(p.data)
                state["exp_avg_sq"] = torch.zeros_like(p.data)
            exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
            beta1, beta2 = group["betas"]
            state["step"] += 1
            if state["step"] > 1:
                pbc1 = 1 - beta1 ** (state["step"] - 1)
                pbc2 = 1 - beta2 ** (state["step"] - 1)
                u = torch.div(exp_avg, exp_avg_sq.sqrt().add_(group["eps"]))
                h = torch.dot(grad.view(-1), u.view(-1)) * math.sqrt(pbc2) / pbc1
                group["lr"] += group["hypergrad_lr"] * h
            exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            denom = exp_avg_sq.sqrt().add_(group["eps"])
            step_size = (
                group["lr"] * math.sqrt(1 - beta2 ** state["step"]) / (1 - beta1 ** state["step"])
            )
            p.data.addcdiv_(exp_avg, denom, value=-step_size)


# --------------------------------------------------------------------------- cases
def make_arrays(count: int, size: int, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(size, dtype=np.float32) for _ in range(count)]
    grads = [rng.standard_normal(size, dtype=np.float32) * np.float32(0.1) for _ in range(count)]
    return params, grads


def big_cases(k: int) -> list[Timed]:
    params, grads = make_arrays(1, 1 << k)
    cases = []
    for name, cls, kwargs in (
        ("Adam", fo.Adam, {"lr": 1e-3}),
        ("Prodigy", fo.Prodigy, {}),
        ("AdamHD", fo.AdamHD, {"lr": 1e-3, "hypergrad_lr": HD_BIG}),
        ("SGD", fo.SGD, {"lr": 1e-3}),
        ("SGDHD", fo.SGDHD, {"lr": 1e-3, "hypergrad_lr": HD_BIG}),
    ):
        mine = [p.copy() for p in params]
        opt = cls(mine, **kwargs)
        cases.append(Timed(name, f"{name} 2^{k}", lambda opt=opt: opt.step(grads)))
    return cases


def torch_module() -> Any | None:
    try:
        import torch
    except ImportError:
        return None
    return torch


def small_pairs(torch: Any, count: int, size: int) -> list[tuple[Timed, Timed]]:
    """(fusedopt, reference) pairs on their own copies of the same arrays, checked first."""
    params, grads = make_arrays(count, size)
    pairs = []

    def torch_side(ref_factory: Any, n: int = count) -> tuple[Any, list[Any]]:
        tensors = [torch.from_numpy(p.copy()) for p in params[:n]]
        for t, g in zip(tensors, grads[:n], strict=True):
            t.grad = torch.from_numpy(g.copy())
        return ref_factory(tensors), tensors

    specs: list[tuple[str, Any, dict[str, Any], Any]] = []
    try:
        import prodigyopt

        specs.append(("Prodigy", fo.Prodigy, {}, lambda ts: prodigyopt.Prodigy(ts)))
    except ImportError:
        print("prodigyopt not installed: Prodigy's pair skipped", file=sys.stderr)
    specs.append(
        (
            "AdamHD",
            fo.AdamHD,
            {"lr": 1e-3, "hypergrad_lr": 1e-8},
            lambda ts: AuthorsAdamHD(torch, ts, 1e-3, 1e-8),
        )
    )
    specs.append(
        (
            "SGDHD",
            fo.SGDHD,
            {"lr": 1e-3, "hypergrad_lr": 1e-6},
            lambda ts: AuthorsSGDHD(torch, ts, 1e-3, 1e-6),
        )
    )
    for name, cls, kwargs, factory in specs:
        # the check: 3 steps from the same start (AdamHD on one tensor: the authors' loop
        # changes lr between tensors, fusedopt steps a group with its summed hypergradient)
        n = 1 if name == "AdamHD" else count
        mine = [p.copy() for p in params[:n]]
        opt = cls(mine, **kwargs)
        ref, tensors = torch_side(factory, n)
        for _ in range(3):
            opt.step(grads[:n])
            ref.step()
        for a, t in zip(mine, tensors, strict=True):
            np.testing.assert_allclose(a, t.numpy(), rtol=2e-4, atol=1e-6, err_msg=name)
        opt2 = cls([p.copy() for p in params], **kwargs)
        ref2, _ = torch_side(factory)
        pairs.append(
            (
                Timed(name, f"fusedopt {name} {count}x{size}", lambda o=opt2: o.step(grads)),
                Timed(name + "-ref", f"reference {name} {count}x{size}", ref2.step),
            )
        )
    return pairs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-log2", type=int, default=25)
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--min-time", type=float, default=0.2, help="seconds per sample")
    ap.add_argument("--threads", type=int, nargs="*", default=sorted({1, fo.get_num_threads()}))
    ap.add_argument("--only", choices=("big", "small"), default=None)
    args = ap.parse_args()
    torch = torch_module()
    before = fo.get_num_threads()
    try:
        for threads in args.threads:
            fo.set_num_threads(threads)
            if torch is not None:
                torch.set_num_threads(threads)
            print(f"\n== {threads} thread(s)")
            if args.only in (None, "big"):
                cases = big_cases(args.size_log2)
                run_rounds(cases, args.repeats, args.min_time)
                by = {c.key: c for c in cases}
                print(f"{'case':<22}{'median ms':>12}{'spread':>9}")
                for c in cases:
                    print(f"{c.name:<22}{c.median * 1e3:>12.3f}{c.spread():>9.1%}")
                for name, base in (("Prodigy", "Adam"), ("AdamHD", "Adam"), ("SGDHD", "SGD")):
                    r = paired(lambda a, b: a / b, by[name], by[base])
                    goal = "  (goal <= 1.3x)" if base == "Adam" else ""
                    print(f"{name} / {base}: {r:.2f}x{goal}")
                del cases, by
            if args.only in (None, "small"):
                if torch is None:
                    print("torch not installed: the reference packages' group skipped")
                    continue
                pairs = small_pairs(torch, args.count, args.size)
                flat = [c for pair in pairs for c in pair]
                run_rounds(flat, args.repeats, args.min_time)
                print(f"{'case':<34}{'median ms':>12}{'spread':>9}")
                for c in flat:
                    print(f"{c.name:<34}{c.median * 1e3:>12.3f}{c.spread():>9.1%}")
                for mine, ref in pairs:
                    r = paired(lambda a, b: b / a, mine, ref)
                    print(f"{mine.key}: {r:.1f}x faster than its reference (goal >= 10x)")
    finally:
        fo.set_num_threads(before)


if __name__ == "__main__":
    main()
