"""``python -m fusedopt.bench``: the same as ``fusedopt bench``."""

from __future__ import annotations

from fusedopt.bench import main

__all__: list[str] = []

if __name__ == "__main__":
    raise SystemExit(main())
