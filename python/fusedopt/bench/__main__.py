"""``python -m fusedopt.bench [options]``: the same as ``fusedopt bench [options]``."""

from __future__ import annotations

import sys

from fusedopt.cli import main

__all__: list[str] = []

if __name__ == "__main__":
    raise SystemExit(main(["bench", *sys.argv[1:]]))
