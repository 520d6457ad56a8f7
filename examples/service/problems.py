"""The service's own problems (RFC 9457), beside conveyor's ``NotFoundError`` (404),
``ConflictError`` (409), ``BadInputError`` (400) and ``PayloadTooLargeError`` (413)."""

from __future__ import annotations

from conveyor import ProblemError

BASE = "https://conveyor.example/problems/"


class MissingApiKey(ProblemError):
    status = 401
    title = "API key required"
    type_uri = BASE + "api-key-required"


class UnknownApiKey(ProblemError):
    status = 401
    title = "Unknown or revoked API key"
    type_uri = BASE + "unknown-api-key"


class ExportExpired(ProblemError):
    status = 410
    title = "Export expired"
    type_uri = BASE + "export-expired"


class ExportNotReady(ProblemError):
    status = 409
    title = "Export not ready"
    type_uri = BASE + "export-not-ready"


class ExperimentNotRunning(ProblemError):
    status = 409
    title = "Experiment not running"
    type_uri = BASE + "experiment-not-running"
