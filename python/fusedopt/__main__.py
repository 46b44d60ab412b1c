"""``python -m fusedopt``: the ``fusedopt`` command line (see :mod:`fusedopt.cli`)."""

from __future__ import annotations

from fusedopt.cli import main

__all__: list[str] = []

if __name__ == "__main__":
    raise SystemExit(main())
