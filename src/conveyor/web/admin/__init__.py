"""The management API and the dashboard (issue 13): mounted by ``as_service``.

    options.py     AdminOptions, ApiKey, new_api_key: prefixes, keys (hashed), proxies
    auth.py        Authenticator: who a request is from (key, cookie, loopback), roles
    csrf.py        same-origin check for actions (Sec-Fetch-Site, Origin)
    state.py       AdminState (app, options, authenticator), the viewer/operator guards,
                   the audit hook
    schemas.py     request and response bodies (the OpenAPI schema)
    views.py       conveyor objects -> bodies, secrets masked (one rule with the logs)
    reads.py       the reads the API and the dashboard share
    install.py     install_admin: what as_service calls
    api.py         the routers under the API prefix:
    queues.py  jobs.py  schedules.py  events.py  cache.py  ratelimits.py  system.py

The dashboard (``conveyor.web.dashboard``) renders the same reads and sends
its actions to this API.
"""
