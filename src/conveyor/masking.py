"""Hiding secrets in what conveyor prints: URLs first (logs, errors, reprs)."""

from __future__ import annotations

import re

# The password runs to the last "@" of the authority, so one containing "@" is masked whole.
_URL_PASSWORD = re.compile(
    r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:@/\s]*):(?P<pw>[^/\s]+)@"
)


def mask_url(url: str) -> str:
    """Hide the password of a URL: ``redis://u:secret@h`` -> ``redis://u:***@h``."""
    return _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:***@", url)
