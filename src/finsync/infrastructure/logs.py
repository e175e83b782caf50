"""structlog setup: JSON or console lines, request ids, and redaction of anything secret.

Standard-library loggers (uvicorn, libraries) go through the same processors and renderer,
so JSON mode prints nothing but JSON. uvicorn's access log is switched off: the API's own
access-log middleware writes one structured, redacted line per request instead.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

SECRET_KEYS = re.compile(
    r"(pass(word)?|secret|token|authori[sz]ation|api[_-]?key|key[_-]?id|credential|cookie|code_verifier|^code$)",
    re.IGNORECASE,
)
BEARER = re.compile(r"(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
# A query parameter whose name looks secret, at the start of a query string or after ? & ;
SECRET_PARAM = re.compile(
    r"(?:^|(?<=[?&;]))"
    r"([^=&;#\s]*(?:code|state|token|key|secret|ref|pass|sig|auth|session|credential|otp)[^=&;#\s]*)"
    r"=[^&;#\s]*",
    re.IGNORECASE,
)
REDACTED = "***"
HANDLER_NAME = "finsync"


def _scrub(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: REDACTED if SECRET_KEYS.search(str(k)) else _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    if isinstance(value, str):
        return SECRET_PARAM.sub(r"\1=" + REDACTED, BEARER.sub(r"\1 " + REDACTED, value))
    return value


def redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Last line of defence: callers should never log secrets, but if they do, nothing leaks."""
    for key in list(event):
        event[key] = REDACTED if SECRET_KEYS.search(key) else _scrub(event[key])
    return event


class _CurrentStdout(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stdout`` is at the time (test runners swap it)."""

    @property
    def stream(self) -> TextIO:
        return sys.stdout

    @stream.setter
    def stream(self, _: TextIO) -> None:
        pass


def configure_logging(fmt: str = "console", level: str = "INFO") -> None:
    # Colour codes only for a person at a terminal, never into files or pipes.
    console = structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty() and sys.stderr.isatty())
    renderer: Any = structlog.processors.JSONRenderer() if fmt == "json" else console
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,  # before redact, so tracebacks are scrubbed too
    ]
    structlog.configure(
        processors=[*shared, redact, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        cache_logger_on_first_use=False,
    )
    handler = _CurrentStdout()
    handler.set_name(HANDLER_NAME)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, redact, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if h.get_name() != HANDLER_NAME] + [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):  # uvicorn's own handlers print plain text
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    access = logging.getLogger("uvicorn.access")
    access.handlers.clear()
    access.propagate = False
    access.disabled = True
    # httpx logs every request URL at INFO, query strings included: keep it quiet.
    logging.getLogger("httpx").setLevel(logging.WARNING)
