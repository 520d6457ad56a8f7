"""The Lua scripts of ``lua/``: their sources, and which files make each.

Every queue script is ``lib.lua`` (the key layout and shared helpers)
followed by its own file, or by several (``_PARTS``); a script that is not
about a queue (``_ALONE``) is its own file alone. Scripts are registered on a client
once and called by SHA (see ``connection.RedisConnection.run_script``).
"""

from __future__ import annotations

import functools
from importlib import resources

_PARTS = {"exchange": ("limits", "exchange"), "backoff": ("backoff", "release")}
"""Scripts made of several files (after lib.lua); the others are lib.lua + their own file."""
_ALONE = {"ratelimit", "history", "audit"}
"""Scripts over keys of their own, not a queue's: no lib.lua."""


def _lua(name: str) -> str:
    return resources.files("conveyor.stores.redis").joinpath(f"lua/{name}.lua").read_text()


@functools.cache
def script_source(name: str) -> str:
    """The whole source of script ``name``."""
    if name in _ALONE:
        return _lua(name)
    return "".join(_lua(part) for part in ("lib", *_PARTS.get(name, (name,))))
