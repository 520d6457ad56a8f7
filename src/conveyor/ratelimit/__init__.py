"""Rate limits for requests and for any code: algorithms, policies, tiers, keys, the limiter.

``rates.py`` (a quota and its text form) -> ``policies.py`` (a named policy with a rate per
tier) -> ``limiter.py`` (checks against the backend's store, with a budget, a breaker and a
per-process fallback in ``local.py``) -> ``service.py`` (``app.rate_limits``). ``quota.py``
turns what a store answers into what headers and a 429 body need; ``keys.py`` finds whose
quota a request uses (API key, user, or the client address behind trusted proxies).
"""
