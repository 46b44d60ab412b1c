"""The ``fusedopt`` command line, end to end in subprocesses, plus fast in-process checks."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fusedopt
from fusedopt import cli, demo
from fusedopt.cli import common, presets, schedule, train
from fusedopt.demo.data import load_digits
from fusedopt.demo.model import MLP, fit

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _missing(*modules: str) -> bool:
    return any(importlib.util.find_spec(m) is None for m in modules)


# find_spec, not importorskip: importing scikit-learn here would cost a second for nothing
needs_data = pytest.mark.skipif(_missing("sklearn"), reason='needs "fusedopt[demo]"')
needs_demo = pytest.mark.skipif(
    _missing("sklearn", "matplotlib", "tqdm"), reason='needs "fusedopt[demo]"'
)


def run_cli(
    *args: str, cwd: Path, env_path: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``python -m fusedopt ARGS`` in ``cwd``; ``env_path`` is prepended to PYTHONPATH."""
    env = dict(os.environ, MPLBACKEND="Agg", MPLCONFIGDIR=str(cwd / ".mpl"))
    if env_path is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(env_path), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "fusedopt", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_png(path: Path) -> None:
    assert path.is_file() and path.stat().st_size > 1000
    assert path.read_bytes()[:8] == PNG_MAGIC


def assert_one_line_error(proc: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0]


def accuracy_in(stdout: str) -> float:
    match = re.search(r"test accuracy: ([\d.]+)%", stdout)
    assert match, stdout
    return float(match.group(1)) / 100


# ------------------------------------------------------------------ end to end
@pytest.mark.parametrize("backend", ["fused", "numpy"])
@needs_data
def test_train_defaults_reach_95_percent(tmp_path: Path, backend: str) -> None:
    proc = run_cli("train", "--backend", backend, "--no-progress", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert accuracy_in(proc.stdout) > 0.95
    assert "optimizer step:" in proc.stdout and f"({backend} backend" in proc.stdout
    assert re.search(r"fused [\d.]+ (µs|ms), NumPy reference [\d.]+ (µs|ms)", proc.stdout)
    assert "Warning" not in proc.stderr


@needs_demo
def test_train_shows_a_progress_bar(tmp_path: Path) -> None:
    proc = run_cli("train", "--epochs", "2", "--n-train", "300", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "test_acc=" in proc.stderr and "loss=" in proc.stderr  # tqdm writes to stderr


@needs_data
def test_train_divergence_is_one_line_naming_the_lr(tmp_path: Path) -> None:
    proc = run_cli("train", "--lr", "1", "--schedule", "constant", "--no-progress", cwd=tmp_path)
    assert_one_line_error(
        proc, 1, "training diverged at epoch", "with lr=1", "try a smaller learning rate, e.g. 0.1"
    )


@needs_demo
def test_lr_find_prints_a_suggestion_and_writes_the_plot(tmp_path: Path) -> None:
    out = tmp_path / "finder.png"
    proc = run_cli("lr-find", "--num-iter", "60", "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    match = re.search(r"suggested lr: ([\d.e+-]+)", proc.stdout)
    assert match, proc.stdout
    assert 1e-4 < float(match.group(1)) < 0.1  # Adam on this MLP trains well around 1e-3..1e-2
    assert "minimum / 10:" in proc.stdout and f"wrote {out}" in proc.stdout
    assert_png(out)


@needs_demo
def test_compare_lr_table_and_plot(tmp_path: Path) -> None:
    proc = run_cli(
        "compare-lr", "--lrs", "1", "0.01", "0.0001", "--epochs", "2", "--no-progress",
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = {line.split()[0]: line for line in proc.stdout.splitlines() if line[:8].strip()}
    assert "diverged" in rows["1"]
    assert "best" in rows["0.01"]
    assert "too slow" in rows["0.0001"]
    assert_png(tmp_path / "compare_lr.png")  # the default --out, in the working directory


@needs_demo
def test_schedule_prints_the_curve_and_plots_it(tmp_path: Path) -> None:
    out = tmp_path / "s.png"
    proc = run_cli(
        "schedule", "StepLR", "step_size=10", "gamma=0.5", "--steps", "30", "--lr", "0.1",
        "--rows", "30", "--plot", str(out), cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    values = dict(re.findall(r"^\s+(\d+)\s+([\d.e+-]+)", proc.stdout, flags=re.M))
    assert (
        float(values["0"]) == 0.1 and float(values["10"]) == 0.05 and float(values["29"]) == 0.025
    )
    assert_png(out)


def test_help_and_a_bad_argument_in_a_subprocess(tmp_path: Path) -> None:
    proc = run_cli("--help", cwd=tmp_path)
    assert proc.returncode == 0
    assert all(cmd.name in proc.stdout for cmd in cli.COMMANDS)
    assert_one_line_error(run_cli("train", "--epochs", "0", cwd=tmp_path), 2, "--epochs")


@pytest.mark.parametrize("command", [c.name for c in cli.COMMANDS])
def test_help_on_every_command(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main([command, "--help"])
    assert info.value.code == 0
    assert f"usage: fusedopt {command}" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["train", "--epochs", "0"], "--epochs: expected a positive integer"),
        (["train", "--optimizer", "nope"], "invalid choice: 'nope'"),
        (["train", "--lr", "-1"], "--lr: expected a positive number"),
        (["train", "--schedule", "bogus"], "unknown schedule 'bogus'"),
        (["train", "--opt-arg", "momentum"], "--opt-arg must look like NAME=VALUE"),
        (["train", "--optimizer", "sgd", "--opt-arg", "momentum=-1"], "momentum"),
        (["train", "--schedule", "LambdaLR"], "lr_lambda"),
        (["schedule", "cosine", "T_max=0", "--steps", "5"], "T_max"),
        (["schedule", "constant", "x=1"], "takes no arguments"),
        (["lr-find", "--start-lr", "1", "--end-lr", "0.1"], "--end-lr"),
        (["lr-find", "--smooth", "1"], "--smooth"),
        (["compare-lr", "--lrs"], "--lrs: expected at least one argument"),
        (["bogus"], "invalid choice: 'bogus'"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else "",
)
@needs_data
def test_bad_arguments_are_one_line_exit_2(
    args: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(args)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0] and err[0].startswith("fusedopt")


def _blocker(tmp_path: Path, *modules: str) -> Path:
    """A directory whose packages shadow ``modules`` and fail to import."""
    root = tmp_path / "blocked"
    for name in modules:
        (root / name).mkdir(parents=True)
        (root / name / "__init__.py").write_text(f"raise ImportError('{name} blocked')\n")
    return root


def test_missing_demo_dependencies_name_the_extra(tmp_path: Path) -> None:
    blocked = _blocker(tmp_path, "sklearn", "matplotlib")
    for args in (["train", "--epochs", "1"], ["lr-find"]):
        proc = run_cli(*args, cwd=tmp_path, env_path=blocked)
        assert_one_line_error(proc, 1, 'pip install "fusedopt[demo]"')
    proc = run_cli("schedule", "cosine", "--plot", "x.png", cwd=tmp_path, env_path=blocked)
    assert_one_line_error(proc, 1, "matplotlib", 'pip install "fusedopt[demo]"')


@needs_data
def test_train_without_tqdm_prints_epochs(tmp_path: Path) -> None:
    blocked = _blocker(tmp_path, "tqdm")
    proc = run_cli("train", "--epochs", "2", "--n-train", "200", cwd=tmp_path, env_path=blocked)
    assert proc.returncode == 0, proc.stderr
    assert "tqdm is not installed" in proc.stdout and "epoch   2/2" in proc.stdout


# ------------------------------------------------------------------ in process
def test_optimizer_choices_are_discovered_from_the_package(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    found = cli.available_optimizers()
    for name in ("SGD", "Adam", "AdamW"):
        assert found[name] is getattr(fusedopt, name)
    assert "Optimizer" not in found

    class Newcomer(fusedopt.Optimizer):  # type: ignore[misc]
        pass

    monkeypatch.setattr(fusedopt, "Newcomer", Newcomer, raising=False)
    monkeypatch.setattr(fusedopt, "__all__", [*fusedopt.__all__, "Newcomer"])
    assert cli.available_optimizers()["Newcomer"] is Newcomer
    assert common.optimizer_name("newcomer") == "Newcomer"


def test_a_command_added_to_the_table_is_registered(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def add(p: object) -> None:
        p.add_argument("--n", type=int, default=3)  # type: ignore[attr-defined]

    def run(args: object) -> int:
        print("ran with", args.n)  # type: ignore[attr-defined]
        return 0

    extra = cli.Command("demo-extra", "an extra command", "an extra command for the test", add, run)
    monkeypatch.setattr(cli, "COMMANDS", [*cli.COMMANDS, extra])
    assert cli.main(["demo-extra", "--n", "5"]) == 0
    assert "ran with 5" in capsys.readouterr().out
    assert len({c.name for c in cli.COMMANDS}) == len(cli.COMMANDS)


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 0
    assert "train" in capsys.readouterr().out


@pytest.mark.parametrize("name", [n for n in cli.SCHEDULES if n != "constant"])
def test_every_schedule_alias_builds_and_runs(name: str) -> None:
    opt = fusedopt.Adam([np.zeros(3)], lr=0.1)
    sched, desc, per_epoch = presets.make_schedule(name, opt, 0.1, 100, {})
    lrs = schedule.schedule_curve(sched, opt, 100, per_epoch)
    assert np.all(np.isfinite(lrs)) and np.all(lrs >= 0) and lrs.max() <= 0.1 * (1 + 1e-12)
    assert desc.split("(")[0] == cli.SCHEDULES[name].cls  # type: ignore[union-attr]


def test_schedule_class_names_and_user_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["schedule", "cosineannealinglr", "--steps", "11", "--rows", "11"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("CosineAnnealingLR(T_max=11)")  # the alias's defaults, sized to --steps
    assert cli.main(["schedule", "warmup_cosine", "warmup_steps=4", "--steps", "20"]) == 0
    assert "warmup_cosine(warmup_steps=4, total_steps=20)" in capsys.readouterr().out


@needs_data
@pytest.mark.parametrize("name", sorted(cli.available_optimizers()))
def test_every_optimizer_trains_the_digits_with_the_cli_defaults(name: str) -> None:
    data = load_digits(seed=0)
    model = MLP((64, 256, 10), seed=0)
    opt = cli.available_optimizers()[name](model.params, **common.optimizer_kwargs(name, None, {}))
    steps = 20 * -(-len(data.y_train) // 32)
    sched, _, _ = presets.make_schedule("cosine", opt, opt.param_groups[0]["lr"], steps, {})
    history = fit(
        model, opt, data.X_train, data.y_train, epochs=20, batch_size=32, scheduler=sched,
        X_test=data.X_test, y_test=data.y_test,
    )  # fmt: skip
    # Rprop adapts its steps to the sign of successive full-batch grads; mini-batch noise
    # caps it near 92% here (150 full-batch steps reach 94%)
    assert history.test_accuracy[-1] > (0.9 if name == "Rprop" else 0.95)


# ------------------------------------------------------------------ rough edges
QUICK_TRAIN = ["train", "--epochs", "1", "--n-train", "64", "--no-progress"]


@needs_data
def test_train_describes_the_chosen_lr_not_the_warm_up_start(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = [*QUICK_TRAIN, "--optimizer", "sgd", "--lr", "0.05", "--schedule", "warmup-cosine"]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "optimizer: SGD(lr=0.05, momentum=0.9, backend=fused)" in out  # not lr=0


@pytest.mark.parametrize("command", [c.name for c in cli.COMMANDS])
def test_flags_show_no_default(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    text = capsys.readouterr().out
    assert "(default: True)" not in text and "(default: False)" not in text


def test_bench_no_check_help_shows_no_misleading_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        cli.main(["bench", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--no-check skip the check of each timed optimizer" in text
    assert "other implementation (default" not in text


@needs_data
def test_train_runs_with_one_blas_thread(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if not any(i.get("user_api") == "blas" for i in threadpoolctl.threadpool_info()):
        pytest.skip("threadpoolctl sees no BLAS")
    seen: list[int | None] = []

    def spy(*args: object, **kwargs: object) -> object:
        seen.append(demo.blas_threads())
        return demo.fit(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(common, "fit", spy)  # what every command trains with
    assert cli.main(QUICK_TRAIN) == 0
    assert seen == [1]
    assert "NumPy's BLAS 1 (--blas-threads)" in capsys.readouterr().out
    seen.clear()
    assert cli.main([*QUICK_TRAIN, "--blas-threads", "2"]) == 0
    assert seen == [2]


@needs_data
def test_train_says_why_the_step_is_slower_in_the_loop(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(train, "step_time", lambda *args: 1e-9)  # alone: far below the loop's
    assert cli.main(QUICK_TRAIN) == 0
    out = capsys.readouterr().out
    assert "in the training loop (fused backend" in out
    assert "(the loop's figure is higher: there each step" in out
    assert "pushed out of the CPU's caches by NumPy's forward and backward passes" in out


@needs_data
def test_train_says_slower_when_the_fused_step_is_slower(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    times = {"fused": 2e-3, "numpy": 1e-3}
    monkeypatch.setattr(train, "step_time", lambda *args: times[args[-1]])
    assert cli.main(QUICK_TRAIN) == 0
    out = capsys.readouterr().out
    assert "fused 2000 µs, NumPy reference 1000 µs: fused is 2.0x slower" in out
