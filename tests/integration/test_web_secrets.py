"""Property: a secret sent to the service never appears in any line the server logs.

Secrets are seeded where a careless service leaks them: the Authorization
header, a cookie, an API-key header, credential-named query parameters (on
a matched route, an unmatched one and a request that fails validation), a
JSON body and the arguments of the job the request enqueues. The whole of
the server's output is searched (conveyor's lines, the worker's lines for
the job, uvicorn's own).
"""

from __future__ import annotations

import string
import time

import httpx2 as httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.web_server import ServiceProcess

secrets = st.text(alphabet=string.ascii_letters + string.digits, min_size=12, max_size=40)
credential_names = st.sampled_from(
    ["token", "access_token", "api_key", "apikey", "password", "secret", "auth", "signature",
     "session_id", "code", "X-Amz-Signature", "jwt"]
)  # fmt: skip


def wait_for(check: object, what: str) -> None:
    deadline = time.monotonic() + 10
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(secret=secrets, name=credential_names, request_tag=st.uuids())
def test_secrets_in_headers_queries_bodies_and_job_arguments_never_reach_a_log_line(
    web_service: ServiceProcess, secret: str, name: str, request_tag: object
) -> None:
    rid = f"prop-{request_tag}"
    # Only what this example made the server write: earlier tests on the same server
    # (schemathesis) log arbitrary text, such as a query of a dozen zeros.
    start = len(web_service.log_lines())
    headers = {
        "Authorization": f"Bearer {secret}",
        "Cookie": f"session={secret}; theme=dark",
        "X-API-Key": secret,
        "X-Request-ID": rid,
    }
    query = {name: secret, "page": "2"}
    with httpx.Client(base_url=web_service.url, headers=headers, timeout=10) as client:
        created = client.post("/charges", params=query, json={"amount": 7, "card_token": secret})
        assert created.status_code == 201
        job_id = created.json()["job_id"]
        rejected = client.post("/charges", params=query, json={"amount": -1, "card_token": secret})
        assert rejected.status_code == 422
        assert client.get("/no-such-page", params=query).status_code == 404
        assert client.get("/items/5", params=query).status_code == 200
        wait_for(
            lambda: client.get(f"/jobs/{job_id}").json()["status"] == "completed",
            "the job to complete",
        )
    wait_for(
        lambda: sum(rid in line for line in web_service.log_lines()) >= 5,
        "the access lines and the job's lines",
    )
    leaked = [line for line in web_service.log_lines()[start:] if secret in line]
    assert leaked == []
