"""The PostgreSQL backend (``postgresql://``): every store in one schema of a database.

It needs the ``asyncpg`` driver, installed by conveyor's ``postgres`` extra; without
it, naming a PostgreSQL URL is a ``ConfigError`` that says so (nothing else in
conveyor imports this package).
"""

from __future__ import annotations

import importlib.util

from conveyor.errors import ConfigError

if importlib.util.find_spec("asyncpg") is None:
    raise ConfigError(
        ["url: the PostgreSQL store needs the asyncpg driver: pip install 'conveyor[postgres]'"]
    )
