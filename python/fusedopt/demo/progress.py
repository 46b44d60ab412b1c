"""A progress bar that uses tqdm when it is installed and degrades to no bar otherwise.

tqdm is optional (``pip install "fusedopt[demo]"``); it is imported only when a bar is
actually shown. Without it, :func:`progress_bar` returns a silent stand-in with the same
methods, so callers need no branches.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from fusedopt._optional import optional_module

__all__ = ["NullBar", "progress_bar", "tqdm_available"]


class NullBar:
    """A do-nothing progress bar with tqdm's ``update`` / ``set_postfix`` / ``close``."""

    def update(self, n: int = 1) -> None:
        """Ignore progress."""

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        """Ignore the postfix."""

    def set_description(self, *args: Any, **kwargs: Any) -> None:
        """Ignore the description."""

    def write(self, s: str) -> None:
        """Print ``s`` (tqdm's ``write`` prints above the bar)."""
        print(s)

    def close(self) -> None:
        """Nothing to close."""

    def __enter__(self) -> NullBar:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def tqdm_available() -> bool:
    """Whether tqdm can be imported."""
    return optional_module("tqdm") is not None


def progress_bar(
    total: int | None = None, desc: str | None = None, disable: bool = False, **kwargs: Any
) -> Any:
    """A ``tqdm`` bar over ``total`` steps, or a :class:`NullBar` when disabled or missing.

    Use it as a context manager; call ``update(n)`` and ``set_postfix(...)`` as with tqdm.
    Extra keyword arguments go to ``tqdm.tqdm``.
    """
    if disable:
        return NullBar()
    tqdm = optional_module("tqdm")
    if tqdm is None:
        return NullBar()
    kwargs.setdefault("leave", True)
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm.tqdm(total=total, desc=desc, **kwargs)
