"""The package's rooms: the library stands alone; optional packages come in through one door.

The library (optimizers, ``reference``, ``lr_scheduler``, ``lr_finder``, ``checkpoint``)
never imports the demo, the benchmark engine or the command line, which use it; and only
``fusedopt._optional`` imports matplotlib, tqdm, scikit-learn, threadpoolctl or torch.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import fusedopt

PACKAGE = Path(fusedopt.__file__).parent
APPS = ("demo", "bench", "cli")
OPTIONAL = ("matplotlib", "tqdm", "sklearn", "threadpoolctl", "torch")


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _is_library(path: Path) -> bool:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] not in APPS and rel.name != "__main__.py"


def _imported(path: Path) -> list[str]:
    """The modules ``path`` imports (absolute names; relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = ".".join(("fusedopt", *path.relative_to(PACKAGE).parent.parts))
    out: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join([*parts[: len(parts) - node.level + 1], *filter(None, [base])])
            out += [base, *(f"{base}.{a.name}" for a in node.names)]
    return out


@pytest.mark.parametrize(
    "path", [p for p in _modules() if _is_library(p)], ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_the_library_imports_no_app(path: Path) -> None:
    apps = [f"fusedopt.{a}" for a in APPS]
    # by whole dotted names: fusedopt.clip is not fusedopt.cli
    bad = [m for m in _imported(path) if any(m == a or m.startswith(a + ".") for a in apps)]
    assert not bad, f"{path.name} imports {bad}"


@pytest.mark.parametrize(
    "path",
    [p for p in _modules() if p.name != "_optional.py"],
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_optional_packages_come_in_through_fusedopt_optional(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    bad = [m for m in _imported(path) if m.split(".")[0] in OPTIONAL]
    assert not bad, f"{path.name} imports {bad} directly: use fusedopt._optional"
    assert "import_module(" not in source, f"{path.name}: use fusedopt._optional"


def test_importing_the_library_loads_no_app_and_no_optional_package() -> None:
    code = (
        "import sys, fusedopt, fusedopt.lr_finder, fusedopt.lr_scheduler, fusedopt.checkpoint\n"
        f"apps = [m for m in sys.modules if m.split('.')[:2] in "
        f"{[['fusedopt', a] for a in APPS]!r}]\n"
        f"optional = [m for m in sys.modules if m.split('.')[0] in {OPTIONAL!r}]\n"
        "print(apps, optional)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.strip() == "[] []"
