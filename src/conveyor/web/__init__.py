"""The service layer: one call makes a FastAPI or Starlette app a conveyor service.

Everything here is private; ``conveyor/__init__.py`` re-exports the public
names lazily, so a worker that imports ``conveyor`` never imports FastAPI or
uvicorn. The core never imports this package.

    service.py      as_service(): the one call; what it installs, in which order
    options.py      ServiceOptions, validated at once (every problem listed)
    lifecycle.py    the lifespan: validate -> stores -> workers -> HTTP, and back
    observe.py      the outermost layer: request context, access log, metrics, in that order
    context.py      request id + W3C traceparent, bound to the logging context
    access_log.py   one line per request, secrets masked
    metrics.py      OpenTelemetry-named HTTP metrics on the app's registry, /metrics
    problems.py     every error as RFC 9457 problem+json; the request deadline
    timeouts.py     per-route request timeouts
    compression.py  gzip above a size, x-no-compression, never SSE
    health.py       /livez /readyz /health (application/health+json) and aliases
    versioning.py   /v1, /v2 routers; Deprecation and Sunset on a retired one
    openapi.py      problem+json and the probes in the OpenAPI document; Swagger UI
    routes.py       the route template of a request (never the raw path)
    ratelimit/      rate limits over HTTP: the global middleware, rate_limit(), the
                    RateLimit headers, the 429 and 503 problems, their OpenAPI answers
    cli.py          `conveyor serve`
"""
