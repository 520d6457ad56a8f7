"""Structured logging: structlog with context variables and secret masking.

Context fields (``job_id``, ``task``, ``queue``, ``attempt``, later
``request_id``) are bound with ``structlog.contextvars`` and so reach every
line logged while a job runs. The last processor before rendering masks
secrets: passwords in URLs, and the values of keys that name a secret.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO, cast

import structlog

from conveyor.config import Settings, mask_url

_SECRET_KEY = re.compile(
    r"pass(word|wd)?|secret|token|api[_-]?key|authorization|credential|private[_-]?key", re.I
)
_INLINE_SECRET = re.compile(
    r"(?P<key>\b[\w-]*?(?:pass(?:word|wd)?|secret|token|api[_-]?key|authorization)"
    r"\s*[=:]\s*)(?P<value>(?:Bearer\s+)?[^\s,;&'\"]+)",
    re.I,
)
_BEARER = re.compile(r"(?P<key>\bBearer\s+)(?P<value>[A-Za-z0-9._~+/-]+=*)")
MASK = "***"


_INLINE_KEYWORDS = ("pass", "secret", "token", "key", "authorization")
"""Lower-case words one of which every ``_INLINE_SECRET`` match contains."""


def mask_text(text: str) -> str:
    """Mask URL passwords, ``key=value`` secrets and bearer tokens in free text."""
    # Substring checks first: every log line passes through here, and most values
    # (ids, routes, timestamps) cannot match any of the patterns.
    if "@" in text and "://" in text:
        text = mask_url(text)
    if ("=" in text or ":" in text) and any(k in text.lower() for k in _INLINE_KEYWORDS):
        text = _INLINE_SECRET.sub(lambda m: m["key"] + MASK, text)
    if "Bearer" in text:
        text = _BEARER.sub(lambda m: m["key"] + MASK, text)
    return text


_secret_keys: dict[str, bool] = {}
"""Whether a field name names a secret, remembered (field names are few)."""


def _names_secret(key: str) -> bool:
    found = _secret_keys.get(key)
    if found is None:
        found = _SECRET_KEY.search(key) is not None
        if len(_secret_keys) < 10_000:
            _secret_keys[key] = found
    return found


def _mask_value(key: str, value: Any) -> Any:
    if isinstance(key, str) and _names_secret(key) and value not in (None, ""):
        return MASK
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {k: _mask_value(k, v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_mask_value("", v) for v in value)
    return value


def mask_data(value: Any, name: str = "") -> Any:
    """``value`` (JSON-like data) with secrets masked by the same rules as log lines: the
    value of a field whose ``name`` (or key, at any depth) names a secret becomes ``***``,
    and secrets inside text are masked (the management API and dashboard show payloads so).
    """
    return _mask_value(name, value)


def mask_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: the last step before rendering, so nothing escapes it."""
    for key, value in list(event_dict.items()):
        event_dict[key] = _mask_value(key, value)
    return event_dict


def configure_logging(settings: Settings) -> None:
    """Set up structlog for conveyor unless the application already has."""
    if not settings.configure_logging or structlog.is_configured():
        return
    fmt = settings.log_format
    if fmt == "auto":
        fmt = "console" if sys.stderr.isatty() else "json"
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            mask_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[settings.log_level]
        ),
        logger_factory=structlog.PrintLoggerFactory(cast(TextIO, _CurrentStderr())),
        cache_logger_on_first_use=True,
    )


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is now, so redirections (rich, pytest) apply."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def get_logger(name: str = "conveyor") -> Any:
    return structlog.get_logger(name)
