"""The files the commands write: checked before any work runs, named as written."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fusedopt import cli
from fusedopt.cli import bench as bench_command
from fusedopt.cli import compare_lr, lr_find, schedule

needs_matplotlib = pytest.mark.skipif(
    importlib.util.find_spec("matplotlib") is None, reason='needs "fusedopt[demo]"'
)


def _no_work(*args: object, **kwargs: object) -> None:
    raise AssertionError("the command started its work before checking its output path")


def _usage_error(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run ``fusedopt ARGS`` in process; it must stop with one line and exit code 2."""
    with pytest.raises(SystemExit) as info:
        cli.main(args)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


@needs_matplotlib
@pytest.mark.parametrize(
    ("args", "module", "work"),
    [
        (["schedule", "cosine", "--plot", "{missing}/s.png"], schedule, "make_schedule"),
        (["lr-find", "--out", "{missing}/lr.png"], lr_find, "data_and_model"),
        (["compare-lr", "--out", "{missing}/c.png"], compare_lr, "data_and_model"),
        (["bench", "--json", "{missing}/b.json"], bench_command, "run_benchmarks"),
        (["bench", "--markdown", "{missing}/b.md"], bench_command, "run_benchmarks"),
        (["bench", "--compare", "{missing}/old.json"], bench_command, "run_benchmarks"),
    ],
    ids=lambda v: f"{v[0]} {v[-2]}" if isinstance(v, list) else "",
)
def test_an_output_in_a_missing_directory_stops_before_any_work(
    args: list[str],
    module: object,
    work: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(module, work, _no_work)
    missing = tmp_path / "no" / "such" / "dir"
    line = _usage_error([a.format(missing=missing) for a in args], capsys)
    option = args[-2]
    assert line.startswith(f"fusedopt {args[0]}: error: {option} {missing}")
    assert "does not exist" in line or "No such file" in line


@needs_matplotlib
def test_lr_find_into_a_missing_directory_is_one_line_in_a_subprocess(tmp_path: Path) -> None:
    env = dict(os.environ, MPLBACKEND="Agg", MPLCONFIGDIR=str(tmp_path / ".mpl"))
    proc = subprocess.run(
        [sys.executable, "-m", "fusedopt", "lr-find", "--out", "nowhere/lr.png"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "fusedopt lr-find: error: --out nowhere/lr.png: the directory 'nowhere' does not "
        "exist (see 'fusedopt lr-find --help')"
    ]
    assert proc.stdout == ""  # nothing ran: no data loaded, no range test


@needs_matplotlib
def test_a_plot_without_extension_reports_the_png_it_wrote(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert cli.main(["schedule", "cosine", "--steps", "10", "--plot", str(out)]) == 0
    written = tmp_path / "out.png"
    assert f"wrote {written}\n" in capsys.readouterr().out
    assert written.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not out.exists()


@needs_matplotlib
def test_a_plot_keeps_an_extension_matplotlib_writes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "curve.svg"
    assert cli.main(["schedule", "cosine", "--steps", "10", "--plot", str(out)]) == 0
    assert f"wrote {out}\n" in capsys.readouterr().out
    assert out.read_text().lstrip().startswith("<?xml")


@needs_matplotlib
def test_an_extension_matplotlib_cannot_write_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(schedule, "make_schedule", _no_work)
    line = _usage_error(["schedule", "cosine", "--plot", str(tmp_path / "s.nope")], capsys)
    assert "matplotlib cannot write '.nope' files" in line and "png" in line


def test_a_directory_is_not_an_output_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(bench_command, "run_benchmarks", _no_work)
    line = _usage_error(["bench", "--json", str(tmp_path)], capsys)
    assert "is a directory" in line


def test_bench_compare_must_be_a_bench_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(bench_command, "run_benchmarks", _no_work)
    old = tmp_path / "old.json"
    old.write_text("[1, 2]")
    assert "not the JSON of 'fusedopt bench --json'" in _usage_error(
        ["bench", "--compare", str(old)], capsys
    )
    old.write_text("{")
    assert "not a JSON file" in _usage_error(["bench", "--compare", str(old)], capsys)
