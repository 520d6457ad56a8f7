"""A traceback as highlighted HTML (pygments, CSS classes only: the CSP allows no inline
style); the stylesheet is ``static/dashboard.css``."""

from __future__ import annotations

from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonTracebackLexer

_FORMATTER = HtmlFormatter(cssclass="highlight", nowrap=True)
MAX_CHARS = 50_000


def highlight_traceback(text: str) -> str:
    """HTML (escaped by pygments) for a formatted Python traceback."""
    html: str = highlight(text[-MAX_CHARS:], PythonTracebackLexer(), _FORMATTER)
    return html
