"""Lua scripts of ``lua/`` that live beside the job store's own (schedules, dedupe).

They run on the job store's client, registered again whenever it reconnects.
redis-py's ``Script`` sends EVALSHA (loading the script on NOSCRIPT) and, on a
cluster, routes it by its one key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from conveyor.stores.redis.jobs import RedisJobStore, meta_key, script_source


class Scripts:
    def __init__(self, jobs: RedisJobStore, names: Sequence[str]) -> None:
        self._jobs = jobs
        self._names = tuple(names)
        self._client: Any = None
        self._scripts: dict[str, Any] = {}

    def script(self, name: str) -> Any:
        """The registered script ``name`` (a redis-py ``Script``), e.g. to queue on a pipeline."""
        client = self._jobs.client
        if client is not self._client:
            self._scripts = {n: client.register_script(script_source(n)) for n in self._names}
            self._client = client
        return self._scripts[name]

    async def run(self, name: str, queue: str, args: Sequence[Any]) -> Any:
        """Run script ``name`` over the keys of ``queue``."""
        script = self.script(name)
        return await self._jobs._call(script, keys=[meta_key(queue)], args=list(args))
