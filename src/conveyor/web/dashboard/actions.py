"""Every action the dashboard offers, and the management API call behind it.

The pages draw a button (or a form) for an action with ``action(name,
**path_params)``; the browser sends the API request itself (``dashboard.js``),
so the dashboard can do nothing the API does not offer, and the API checks
the role, the origin and records the audit entry. ``tests/unit/test_dashboard_parity.py``
lists the pairs and checks each against the OpenAPI document.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from markupsafe import Markup, escape

from conveyor.errors import ProgrammingError


@dataclass(frozen=True, slots=True)
class Action:
    """A button (or a form, when ``form``) that sends ``method`` ``path`` to the API."""

    name: str
    label: str
    method: str
    path: str
    """Under the API prefix, with ``{param}`` placeholders."""
    confirm: str | None = None
    form: bool = False
    """The request body is the surrounding form's fields as JSON."""
    query: tuple[str, ...] = ()
    """Parameters given to ``action(...)`` that go into the query string."""


ACTIONS: dict[str, Action] = {
    a.name: a
    for a in (
        Action("queue.pause", "Pause", "POST", "/queues/{queueName}/pause"),
        Action("queue.resume", "Resume", "POST", "/queues/{queueName}/resume"),
        Action(
            "queue.retry_failed",
            "Retry failed",
            "POST",
            "/queues/{queueName}/retry-failed",
            "Retry up to 1000 failed jobs of this queue?",
            form=True,
        ),
        Action(
            "queue.clean",
            "Clean",
            "POST",
            "/queues/{queueName}/clean",
            "Delete these jobs?",
            form=True,
        ),
        Action("job.add", "Add job", "POST", "/queues/{queueName}/jobs", form=True),
        Action("job.retry", "Retry", "POST", "/jobs/{jobId}/retry"),
        Action("job.promote", "Run now", "POST", "/jobs/{jobId}/promote"),
        Action("job.cancel", "Cancel", "POST", "/jobs/{jobId}/cancel", "Cancel this job?"),
        Action("job.remove", "Remove", "DELETE", "/jobs/{jobId}", "Remove this job?"),
        Action("schedule.pause", "Pause", "POST", "/schedules/{name}/pause"),
        Action("schedule.resume", "Resume", "POST", "/schedules/{name}/resume"),
        Action("schedule.trigger", "Run now", "POST", "/schedules/{name}/trigger"),
        Action("schedule.remove", "Remove", "DELETE", "/schedules/{name}", "Remove this schedule?"),
        Action("dead_letter.replay", "Replay", "POST", "/events/dead-letters/{letterId}/replay"),
        Action(
            "dead_letter.replay_all",
            "Replay all",
            "POST",
            "/events/dead-letters/replay",
            "Replay every dead letter of this group?",
            form=True,
        ),
        Action(
            "dead_letter.purge",
            "Purge",
            "DELETE",
            "/events/dead-letters",
            "Delete every dead letter of this group?",
            query=("group",),
        ),
        Action("cache.invalidate", "Invalidate", "POST", "/cache/invalidate", form=True),
        Action("rate_limit.reset", "Reset", "POST", "/rate-limits/{policy}/reset", form=True),
    )
}

_PARAM = re.compile(r"\{(\w+)\}")


def action_url(api_prefix: str, name: str, params: dict[str, Any]) -> str:
    """The API URL of action ``name`` with its path (and query) parameters filled in."""
    action = ACTIONS.get(name)
    if action is None:
        raise ProgrammingError(f"no dashboard action {name!r}")
    wanted = set(_PARAM.findall(action.path)) | set(action.query)
    if set(params) != wanted:
        raise ProgrammingError(f"action {name} takes {sorted(wanted)}, got {sorted(params)}")
    path = _PARAM.sub(lambda m: quote(str(params[m[1]]), safe=""), action.path)
    query = {k: params[k] for k in action.query if params[k] is not None}
    return api_prefix + path + ("?" + urlencode(query) if query else "")


def action_attributes(api_prefix: str, name: str, params: dict[str, Any]) -> Markup:
    """The ``data-*`` attributes ``dashboard.js`` reads to send the action."""
    action = ACTIONS[name]
    parts = [
        f'data-action="{escape(name)}"',
        f'data-method="{escape(action.method)}"',
        f'data-url="{escape(action_url(api_prefix, name, params))}"',
    ]
    if action.confirm:
        parts.append(f'data-confirm="{escape(action.confirm)}"')
    return Markup(" ".join(parts))  # noqa: S704 (every part is escaped above)


def action_button(api_prefix: str, name: str, params: dict[str, Any], label: str | None) -> Markup:
    action = ACTIONS[name]
    attributes = action_attributes(api_prefix, name, params)
    text = escape(label or action.label)
    html = f'<button type="button" class="act" {attributes}>{text}</button>'
    return Markup(html)  # noqa: S704 (attributes and text are escaped)
