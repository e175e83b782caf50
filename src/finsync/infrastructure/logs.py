"""structlog setup: JSON or console lines, request ids, and redaction of anything secret."""

from __future__ import annotations

import logging
import re
from collections.abc import MutableMapping
from typing import Any

import structlog

SECRET_KEYS = re.compile(
    r"(pass(word)?|secret|token|authori[sz]ation|api[_-]?key|key[_-]?id|credential|cookie|code_verifier|^code$)",
    re.IGNORECASE,
)
BEARER = re.compile(r"(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
REDACTED = "***"


def _scrub(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: REDACTED if SECRET_KEYS.search(str(k)) else _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    if isinstance(value, str):
        return BEARER.sub(r"\1 " + REDACTED, value)
    return value


def redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Last line of defence: callers should never log secrets, but if they do, nothing leaks."""
    for key in list(event):
        event[key] = REDACTED if SECRET_KEYS.search(key) else _scrub(event[key])
    return event


def configure_logging(fmt: str = "console", level: str = "INFO") -> None:
    renderer: Any = structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,  # before redact, so tracebacks are scrubbed too
            redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=level.upper(), format="%(message)s")
    # httpx logs every request URL at INFO, query strings included: keep it quiet.
    logging.getLogger("httpx").setLevel(logging.WARNING)
