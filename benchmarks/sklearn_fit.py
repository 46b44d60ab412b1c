"""The speed goals of the scikit-learn issue: ``fusedopt.sklearn.MLPClassifier`` (fusedopt's
Adam) against scikit-learn's own Adam, (512, 512) layers, batch 64, default threads, the
median of 3 fits: >= 1.25x faster on ``load_digits``, >= 1.3x on the 200-feature problem.

Runs ``examples/sklearn_compare.py`` (same options) and reports each goal as met or not::

    python benchmarks/sklearn_fit.py                      # the goals' sizes
    python benchmarks/sklearn_fit.py --max-iter 5         # shorter fits
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

GOALS = {"digits": 1.25, "classification": 1.3}


def _example() -> object:
    path = Path(__file__).resolve().parents[1] / "examples" / "sklearn_compare.py"
    spec = importlib.util.spec_from_file_location("sklearn_compare", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    """Run the comparison; exit status 1 when a speed goal is missed."""
    ex = _example()
    args = ex.parse(argv)  # type: ignore[attr-defined]
    rows = ex.run(args)  # type: ignore[attr-defined]
    print("\n" + ex.markdown(rows))  # type: ignore[attr-defined]
    ok = True
    for r in rows:
        name = r["data"].split(" ")[0]
        if r["optimizer"].startswith("fusedopt Adam ") and name in GOALS:
            met = r["speedup"] >= GOALS[name]
            ok &= met
            print(
                f"{name}: fusedopt Adam {r['speedup']:.2f}x sklearn's Adam "
                f"(goal {GOALS[name]}x): {'met' if met else 'NOT met'}"
            )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
