"""Cross-site request forgery: an action must come from the dashboard's own origin.

A browser attaches the session cookie (and, on a loopback address, nothing is
needed at all) to a request any page sends, so an unsafe request that is not
authenticated by a header a page cannot set cross-site without CORS
(``Authorization``, ``X-API-Key``) must prove it comes from our own origin:

- ``Sec-Fetch-Site`` (every current browser sends it) must be ``same-origin``
  or ``none`` (typed by the user);
- else an ``Origin`` header must name this very host;
- a request with neither comes from no browser (curl, a script), which cannot
  carry a victim's cookie.

The same check as Sidekiq's; Flower had none (CVE-2022-30034).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
ALLOWED_FETCH_SITES = frozenset({"same-origin", "none"})


def check_same_origin(request: HTTPConnection, method: str) -> None:
    """403 for an unsafe request a page of another origin could have sent."""
    if method in SAFE_METHODS:
        return
    headers = request.headers
    if "authorization" in headers or "x-api-key" in headers:
        return
    site = headers.get("sec-fetch-site")
    if site is not None:
        if site.lower() not in ALLOWED_FETCH_SITES:
            raise HTTPException(403, f"Cross-site request refused (Sec-Fetch-Site: {site}).")
        return
    origin = headers.get("origin")
    # The host alone: behind a proxy that ends TLS the scheme seen here is http.
    if origin is not None and urlsplit(origin).netloc != headers.get("host", ""):
        raise HTTPException(403, "Cross-origin request refused (Origin does not match).")
