"""``fusedopt compare-lr --optimizers``: the grid of optimizers x rates, table and plot."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import fusedopt
from fusedopt import cli
from fusedopt.cli import common, compare_lr
from fusedopt.demo.data import load_digits
from fusedopt.demo.model import MLP, TrainingDiverged, fit

needs_data = pytest.mark.skipif(
    importlib.util.find_spec("sklearn") is None, reason='needs "fusedopt[demo]"'
)
needs_matplotlib = pytest.mark.skipif(
    importlib.util.find_spec("matplotlib") is None, reason='needs "fusedopt[demo]"'
)

QUICK = ["compare-lr", "--n-train", "200", "--epochs", "2", "--no-progress", "--hidden", "32"]


def _direct(name: str, lr: float) -> float | None:
    """The same run without the command: final test accuracy, None if it diverged."""
    data = load_digits(seed=0, n_train=200)
    model = MLP((data.n_features, 32, data.n_classes), seed=0)
    kwargs = common.optimizer_kwargs(name, lr, {})
    opt = cli.available_optimizers()[name](model.params, **kwargs)
    try:
        h = fit(model, opt, data.X_train, data.y_train, epochs=2, batch_size=32,
                X_test=data.X_test, y_test=data.y_test, seed=0)  # fmt: skip
    except TrainingDiverged:
        return None
    return h.test_accuracy[-1]


@needs_data
def test_grid_prints_progress_a_table_and_a_summary(capsys: pytest.CaptureFixture[str]) -> None:
    args = [*QUICK, "--optimizers", "adam,SGD", "--lrs", "10", "0.01", "--no-plot"]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    progress = [line for line in lines if line.startswith("[")]
    assert [p.split("]")[0] for p in progress] == ["[1/4", "[2/4", "[3/4", "[4/4"]
    assert progress[0].split()[1:3] == ["Adam", "lr=10"] and "diverged" in progress[0]
    assert progress[2].split()[1:3] == ["SGD", "lr=10"]
    assert re.search(r"test acc [\d.]+%, train loss [\d.]+$", progress[3])
    # the CLI's own defaults, but lr
    flat = " ".join(out.split())
    assert "schedule constant: Adam(backend=fused), SGD(momentum=0.9, backend=fused)" in flat
    # the table: a row per lr, a column per optimizer, the same numbers as direct runs
    header = next(i for i, line in enumerate(lines) if line.split() == ["lr", "Adam", "SGD"])
    row10, row001 = lines[header + 1].split(), lines[header + 2].split()
    assert row10 == ["10", "diverged", "diverged"]
    assert row001[0] == "0.01"
    for cell, name in zip(row001[1:], ["Adam", "SGD"], strict=True):
        acc = _direct(name, 0.01)
        assert acc is not None and cell == f"{acc:.2%}"
    assert re.search(r"^Adam: best [\d.]+% at lr=0.01; within 2 points of it: 1/2 rates "
                     r"\(0.01 only\); diverged: 1$", out, re.M)  # fmt: skip


@needs_data
@needs_matplotlib
def test_plot_is_accuracy_against_lr_a_line_per_optimizer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: dict[str, Any] = {}
    real_save = compare_lr.save_figure

    def keep(plt: Any, fig: Any, path: Path) -> None:
        ax = fig.axes[0]
        seen["xscale"] = ax.get_xscale()
        seen["lines"] = [(ln.get_label(), ln.get_xdata(), ln.get_ydata(), ln.get_marker())
                         for ln in ax.get_lines()]  # fmt: skip
        seen["legend"] = [t.get_text() for t in ax.get_legend().get_texts()]
        real_save(plt, fig, path)

    monkeypatch.setattr(compare_lr, "save_figure", keep)
    out = tmp_path / "study.png"
    args = [*QUICK, "--optimizers", "Adam,Adagrad", "--lr-range", "0.001", "10", "3"]
    assert cli.main([*args, "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote {out}" in capsys.readouterr().out
    assert seen["xscale"] == "log"
    assert seen["legend"] == ["Adam", "Adagrad", "diverged"]
    solid = {lbl: (x, y) for lbl, x, y, m in seen["lines"] if lbl in ("Adam", "Adagrad")}
    crosses = [(x, y) for lbl, x, y, m in seen["lines"] if m == "x" and len(x)]
    for name in ("Adam", "Adagrad"):
        x, y = solid[name]
        assert list(x) == [0.001, 0.1]  # the diverged lr=10 is not on the solid line
        for lr, acc in zip(x, y, strict=True):
            assert acc == pytest.approx(100 * _direct(name, lr))  # type: ignore[operator]
    assert len(crosses) == 2 and all(list(x) == [10.0] for x, _ in crosses)  # one per optimizer
    assert len({float(y[0]) for _, y in crosses}) == 2  # on separate rows


@needs_data
def test_single_optimizer_mode_is_unchanged(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([*QUICK, "--lrs", "10", "0.01", "--no-plot"]) == 0
    out = capsys.readouterr().out
    assert "optimizer: Adam(backend=fused); schedule: constant; 2 epochs per lr" in out
    assert re.search(r"^\s+10  diverged", out, re.M) and re.search(r"^\s+0.01  best", out, re.M)
    assert (
        cli.main([*QUICK, "--optimizer", "sgd", "--lr-range", "0.01", "0.1", "2", "--no-plot"]) == 0
    )
    out = capsys.readouterr().out
    assert "optimizer: SGD(momentum=0.9, backend=fused)" in out
    assert re.search(r"^\s+0.1  ", out, re.M) and re.search(r"^\s+0.01  ", out, re.M)


def test_learning_rates_from_a_range() -> None:
    ns = compare_lr.argparse.Namespace(lrs=None, lr_range=[1e-4, 10.0, 6.0])
    np.testing.assert_allclose(compare_lr.learning_rates(ns), [10, 1, 0.1, 0.01, 1e-3, 1e-4])
    ns = compare_lr.argparse.Namespace(lrs=None, lr_range=None)
    assert compare_lr.learning_rates(ns) == list(compare_lr.DEFAULT_LRS)


def test_optimizer_list_resolves_names() -> None:
    assert compare_lr.optimizer_list(None) is None
    assert compare_lr.optimizer_list("adam, sgd,ADAGRAD") == ["Adam", "SGD", "Adagrad"]


def _no_training(*args: object, **kwargs: object) -> None:
    raise AssertionError("trained before checking the arguments")


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--optimizers", "Adam,,SGD"], "--optimizers: an empty name in 'Adam,,SGD'"),
        (["--optimizers", "Adam,Bogus"], "--optimizers: unknown optimizer 'Bogus' (choose from"),
        (["--optimizers", "Adam,adam"], "--optimizers: Adam is given twice"),
        (["--optimizers", "Adam", "--optimizer", "SGD"], "give --optimizer or --optimizers"),
        (["--lr-range", "1", "0.1", "3"], "--lr-range: HI (0.1) must be greater than LO (1)"),
        (["--lr-range", "0.01", "1", "2.5"], "--lr-range: N must be an integer >= 2, got 2.5"),
        (["--lr-range", "0.01", "1", "1"], "--lr-range: N must be an integer >= 2, got 1"),
        (["--lr-range", "0.01", "1"], "--lr-range: expected 3 arguments"),
        (["--lr-range", "0", "1", "3"], "--lr-range: expected a positive number"),
        (["--lrs", "0.1", "--lr-range", "0.01", "1", "3"], "not allowed with argument"),
        (["--lrs", "0.1", "0.1"], "--lrs: a learning rate is given twice"),
        (["--optimizers", "Adam,SGD", "--lrs", "0.1", "0.1"], "given twice"),
        (["--optimizers", "SGD,Adam", "--opt-arg", "momentum=0.5"], "cannot build Adam"),
        (["--optimizers", "Adam,SGD", "--schedule", "bogus"], "unknown schedule 'bogus'"),
    ],
)
@needs_data
def test_bad_input_is_one_line_before_any_training(
    extra: list[str], needle: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setattr(compare_lr, "run_one", _no_training)
    with pytest.raises(SystemExit) as info:
        cli.main([*QUICK, "--no-plot", *extra])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0] and err[0].startswith("fusedopt compare-lr"), err


@needs_matplotlib
def test_grid_output_in_a_missing_directory_stops_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(compare_lr, "data_and_model", _no_training)
    missing = tmp_path / "nope" / "c.png"
    with pytest.raises(SystemExit) as info:
        cli.main(["compare-lr", "--optimizers", "Adam,SGD", "--out", str(missing)])
    assert info.value.code == 2
    assert "does not exist" in capsys.readouterr().err


def test_a_class_the_loop_cannot_drive_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    class Modal(fusedopt.SGD):  # type: ignore[misc]
        steps_any_array = False

    monkeypatch.setattr(fusedopt, "Modal", Modal, raising=False)
    monkeypatch.setattr(fusedopt, "__all__", [*fusedopt.__all__, "Modal"])
    with pytest.raises(common.UsageError, match="Modal cannot be trained by the command line's"):
        compare_lr.optimizer_list("Adam,modal")


def test_new_optimizer_classes_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    class Newcomer(fusedopt.SGD):  # type: ignore[misc]
        pass

    monkeypatch.setattr(fusedopt, "Newcomer", Newcomer, raising=False)
    monkeypatch.setattr(fusedopt, "__all__", [*fusedopt.__all__, "Newcomer"])
    assert compare_lr.optimizer_list("Adam,newcomer") == ["Adam", "Newcomer"]


@needs_data
@pytest.mark.skipif(not hasattr(fusedopt, "Prodigy"), reason="Prodigy not built yet")
def test_train_with_prodigy_reaches_97_percent_with_its_default_lr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert "lr" not in common.OPTIMIZER_DEFAULTS.get("Prodigy", {})  # untuned: lr = 1.0
    assert cli.main(["train", "--optimizer", "prodigy", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "optimizer: Prodigy(lr=1, backend=fused)" in out
    match = re.search(r"test accuracy: ([\d.]+)%", out)
    assert match and float(match.group(1)) >= 97.0, out


@needs_data
@pytest.mark.skipif(not hasattr(fusedopt, "AdamWScheduleFree"), reason="no schedule-free yet")
def test_fit_steps_a_schedule_free_optimizer_in_train_mode_and_evaluates_in_eval_mode() -> None:
    from fusedopt.demo import iterate_minibatches

    data = load_digits(seed=0, n_train=300)

    def make() -> tuple[MLP, Any]:
        model = MLP((data.n_features, 32, data.n_classes), seed=0)
        return model, fusedopt.AdamWScheduleFree(model.params, lr=0.01, backend="numpy")

    model, opt = make()
    h = fit(model, opt, data.X_train, data.y_train, epochs=3, X_test=data.X_test,
            y_test=data.y_test, seed=0)  # fmt: skip
    # the same loop by hand: train() before the steps, eval() before evaluating
    ref, ref_opt = make()
    rng = np.random.default_rng(0)
    accs = []
    for _ in range(3):
        ref_opt.train()
        for Xb, yb in iterate_minibatches(data.X_train, data.y_train, 32, rng):
            ref_opt.step(ref.loss_and_grads(Xb, yb)[1])
        ref_opt.eval()
        accs.append(ref.accuracy(data.X_test, data.y_test))
    assert h.test_accuracy == accs and accs[-1] > 0.8
    assert all(p.tobytes() == q.tobytes() for p, q in zip(model.params, ref.params, strict=True))
    assert not opt.param_groups[0]["train_mode"]  # returned at the averaged point x
