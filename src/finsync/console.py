"""What every command of the CLI shares: one-line errors with distinct exit codes, settings
and container set-up that fail in one line, and log lines kept off stdout and out of
progress bars."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractContextManager, asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, NoReturn

import structlog
import typer
from pydantic import ValidationError
from pydantic_settings import SettingsError

from finsync.config import Settings
from finsync.domain.errors import FinsyncError, NotFound

if TYPE_CHECKING:
    from finsync.bootstrap import Container

FAILED, USAGE, NOT_FOUND = 1, 2, 3
EXIT_CODES = (
    "Exit codes: 0 done; 1 failed (bad configuration, unreachable database, rejected input, "
    "a failed sync); 2 usage error (unknown option, missing or malformed argument); "
    "3 not found (no such user or connection)."
)


def fail(message: str, code: int = FAILED) -> NoReturn:
    """One line on stderr, no traceback, and the exit code that says what kind of failure."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def fail_on(exc: FinsyncError) -> NoReturn:
    fail(exc.detail, NOT_FOUND if isinstance(exc, NotFound) else FAILED)


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:  # name the variable and the rule, never the value (a secret?)
        problems = "; ".join(
            f"FINSYNC_{'_'.join(map(str, err['loc'])).upper()}: {err['msg']}" for err in exc.errors()
        )
        fail(f"{problems} (see docs/configuration.md)")
    except SettingsError as exc:  # a value that is not JSON where JSON is read (FINSYNC_PROVIDERS)
        field = re.search(r'field "(\w+)"', str(exc))
        name = f"FINSYNC_{field.group(1).upper()}" if field else "a FINSYNC_* setting"
        fail(f"{name}: not valid JSON (see docs/configuration.md)")


def require_service_secrets() -> None:
    """For commands that start the service (serve, a worker): check the secrets before anything
    starts, so that a missing one is this one line and not a server's start-up traceback."""
    _check_secrets(load_settings())


def _check_secrets(settings: Settings) -> None:
    """Before the application is imported (about a second of CPU): a refusal is this one line."""
    from finsync.infrastructure.keys import ConfigurationError, resolve_secrets

    try:
        resolve_secrets(settings)
    except ConfigurationError as exc:
        fail(str(exc))


class _HeldStderr:
    """stderr for log lines; while a progress bar is drawn they wait, then follow it."""

    def __init__(self) -> None:
        self._held: list[str] | None = None

    def write(self, text: str) -> int:
        if self._held is None:
            sys.stderr.write(text)
        else:
            self._held.append(text)
        return len(text)

    def flush(self) -> None:
        if self._held is None:
            sys.stderr.flush()

    @contextmanager
    def held(self) -> Iterator[None]:
        self._held = []
        try:
            yield
        finally:
            lines, self._held = self._held, None
            sys.stderr.write("".join(lines))
            sys.stderr.flush()


_STDERR = _HeldStderr()


def configure_cli_logging(settings: Settings) -> None:
    """The service's log format and level, but on stderr: stdout carries only command output."""
    from finsync.infrastructure.logs import configure_logging

    configure_logging(settings.log_format.value, settings.log_level)
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=_STDERR))  # type: ignore[arg-type]
    for handler in logging.getLogger().handlers:  # the standard library's lines too
        if isinstance(handler, logging.StreamHandler) and handler.stream in (sys.stderr, sys.__stderr__):
            handler.setStream(_STDERR)


def held_logs() -> AbstractContextManager[None]:
    """Log lines emitted inside wait until it ends (around a progress bar or spinner)."""
    return _STDERR.held()


@asynccontextmanager
async def container(settings: Settings) -> AsyncIterator[Container]:
    """The service's wiring for one command; a configuration error is one line, exit 1."""
    configure_cli_logging(settings)
    _check_secrets(settings)
    from finsync.bootstrap import build

    built = build(settings)
    try:
        yield built
    except FinsyncError as exc:
        fail_on(exc)
    finally:
        await built.aclose()
