"""Why a request never got an answer, in words a person can act on: host and cause, no URL."""

from __future__ import annotations

import socket
import ssl

import httpx

# Attempts that fail like this never reached the provider: no slot spent, always safe to retry.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout)


def _os_cause(exc: BaseException) -> OSError | None:
    """The OS-level error under httpx's, httpcore's and anyio's wrappers (``raise ... from``);
    anyio's generic "All connection attempts failed" sits above the specific one."""
    found: OSError | None = None
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError):
            if type(current) is not OSError or current.errno is not None:
                return current
            found = found or current
        current = current.__cause__ or current.__context__
    return found


def _cause_text(exc: httpx.TransportError) -> str:
    cause = _os_cause(exc)
    if isinstance(cause, socket.gaierror):
        return "host name not found (DNS)"
    if isinstance(cause, ConnectionRefusedError):
        return "connection refused"
    if isinstance(cause, ConnectionResetError):
        return "connection reset"
    if isinstance(cause, ssl.SSLError):
        return "TLS handshake failed"
    if isinstance(cause, TimeoutError) or isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror.lower()
    return type(exc).__name__


def describe_failure(exc: httpx.TransportError, host: str) -> str:
    """Host and cause, never the URL: paths and query strings may carry secrets."""
    if isinstance(exc, NOT_SENT):
        return f"could not connect to {host}: {_cause_text(exc)}"
    if isinstance(exc, httpx.TimeoutException):
        return f"{host} did not answer in time ({type(exc).__name__})"
    return f"connection to {host} failed: {_cause_text(exc)}"
