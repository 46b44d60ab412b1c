"""Hypothesis settings shared by the property, fuzz, non-finite and checkpoint tests.

Each test states how many examples it runs on a developer's machine; ``CI=true`` runs
four times as many, and ``FUSEDOPT_SANITIZED=1`` (set by ``.ci/sanitize.sh``, where
every step is several times slower) the developer's number. No deadline: the first
call of a test, a loaded machine and the sanitizers make timings meaningless.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

__all__ = ["CI", "SANITIZED", "examples"]

CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
SANITIZED = os.environ.get("FUSEDOPT_SANITIZED", "") == "1"


def examples(n: int) -> settings:
    """Settings for a test of ``n`` examples locally (``4 * n`` in CI, ``n`` sanitized)."""
    scale = 4 if CI and not SANITIZED else 1
    return settings(
        max_examples=n * scale,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        print_blob=True,
    )
