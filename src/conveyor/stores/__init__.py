"""Stores: where jobs, schedules, flows, limits, events and cache entries live.

The protocols sit here (``base.py`` for jobs, one module per other store);
each backend is one package (``memory/``, ``sqlite/``, ``redis/``) whose
``backend.py`` builds all of its stores; ``registry.py`` maps URLs to them.
"""
