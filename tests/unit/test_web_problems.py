"""conveyor's errors as RFC 9457 problem details: one table, safe messages."""

from __future__ import annotations

import json

import pytest

from conveyor import (
    BadInputError,
    CacheError,
    ConfigError,
    ConflictError,
    InvalidArgumentsError,
    JobFailedError,
    NotFoundError,
    PayloadTooLargeError,
    ProblemError,
    ProgrammingError,
    RateLimitedError,
    StoreUnavailableError,
    TaskNotFoundError,
)
from conveyor.web.problems import GENERIC_DETAIL, problem_for


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (BadInputError("bad"), 400),
        (InvalidArgumentsError("bad args"), 422),
        (PayloadTooLargeError(10, 5), 413),
        (NotFoundError("gone"), 404),
        (TaskNotFoundError("no task"), 404),
        (ConflictError("busy"), 409),
        (RateLimitedError("slow down"), 429),
        (StoreUnavailableError("down"), 503),
        (CacheError("no"), 503),
        (JobFailedError("j1", "failed", "ValueError", "x"), 500),
    ],
)
def test_operational_errors_map_to_their_status_with_their_message(
    error: Exception, status: int
) -> None:
    problem = problem_for(error)
    assert problem is not None
    assert problem.status == status
    assert problem.detail == str(error)


def test_the_servers_own_configuration_error_is_a_generic_500() -> None:
    problem = problem_for(ConfigError(["url: redis://u:hunter2@h is wrong"]))
    assert problem is not None
    assert (problem.status, problem.detail) == (500, GENERIC_DETAIL)


def test_bugs_are_not_mapped_so_they_become_a_generic_500() -> None:
    assert problem_for(ProgrammingError("bug")) is None
    assert problem_for(KeyError("x")) is None


def test_secrets_in_an_operational_message_are_masked() -> None:
    problem = problem_for(StoreUnavailableError("cannot reach redis://app:hunter2@db:6379"))
    assert problem is not None and "hunter2" not in (problem.detail or "")


class Forbidden(ProblemError):
    status = 403
    title = "Not allowed here"
    type_uri = "https://example.com/problems/forbidden"


def test_an_application_problem_renders_with_its_extensions() -> None:
    problem = problem_for(Forbidden("area 51", zone="51", allowed=["1", "2"]))
    assert problem is not None
    response = problem.response({"path": "/zones/51", "state": {"request_id": "r1"}})
    body = json.loads(bytes(response.body))
    assert body == {
        "type": "https://example.com/problems/forbidden",
        "title": "Not allowed here",
        "status": 403,
        "detail": "area 51",
        "instance": "/zones/51",
        "request_id": "r1",
        "zone": "51",
        "allowed": ["1", "2"],
    }


def test_extension_members_may_not_shadow_standard_ones() -> None:
    with pytest.raises(ProgrammingError):
        Forbidden("x", status=200)


def test_retry_after_is_sent_for_a_rate_limit() -> None:
    problem = problem_for(RateLimitedError("slow down", retry_after=0.2))
    assert problem is not None and problem.headers == {"Retry-After": "1"}
