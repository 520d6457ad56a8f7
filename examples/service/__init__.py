"""The reference service: the products conveyor was built from, running on it.

    conveyor serve examples.service:app

``app`` is the FastAPI service, ``backbone`` the conveyor app behind it (jobs,
schedules, cache, event bus, rate limits, metrics, health). Both are built on
first access, so the pure modules (the statistics, the specification) import
without building a service. See docs/reference-service.md.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["app", "backbone"]
_WHERE = {"app": ".main", "backbone": ".main"}  # main imports every product (its tasks)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name], __name__), name)
