"""Typed jobs and their policies: what the ``JobQueue`` port carries, whatever runs it.

A job is a frozen dataclass of plain fields (UUID, str, int, float, bool, datetime); a
``JobType`` says which use case runs it and how: its retry policy, its lock (one at a
time across every machine), its queueing lock (at most one waiting) and its concurrency
group (a per-process cap, e.g. per provider). Adapters (in-process, procrastinate) read
these and nothing else, so adding a job type is a dataclass plus one registration.
"""

from __future__ import annotations

import dataclasses
import random
import typing
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, Protocol, TypeVar
from uuid import UUID

from finsync.domain.errors import RateLimited


class Job(Protocol):
    """Any typed job: a dataclass whose class names its ``kind`` (the queue's task name)."""

    kind: ClassVar[str]


J = TypeVar("J", bound=Job)


@dataclass(frozen=True, slots=True)
class SyncConnection:
    """Run a connection's queued (or interrupted) sync; ``run_id`` is the run it was queued for."""

    kind: ClassVar[str] = "sync_connection"
    connection_id: UUID
    run_id: UUID
    provider: str
    # The person who asked for it, when they did (``PersonPresent``); None when scheduled.
    present_ip: str | None = None
    present_user_agent: str | None = None

    @staticmethod
    def lock_of(connection_id: UUID) -> str:
        """One sync of a connection at a time, and at most one waiting, across all machines."""
        return f"connection:{connection_id}"


@dataclass(frozen=True, slots=True)
class DeliverWebhook:
    """Send one webhook delivery (an event for one endpoint); retried with back-off until the
    receiver answers 2xx or the attempts run out."""

    kind: ClassVar[str] = "deliver_webhook"
    delivery_id: UUID

    @staticmethod
    def lock_of(delivery_id: UUID) -> str:
        return f"webhook-delivery:{delivery_id}"


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """Exponential back-off with jitter: attempt n waits between half and all of
    ``min(cap, base * 2**n)`` seconds, never before a ``RateLimited``'s reset; retried up to
    ``max_attempts``."""

    max_attempts: int = 5
    base_seconds: float = 2.0
    cap_seconds: float = 300.0
    retry_on: tuple[type[BaseException], ...] = (Exception,)

    def delay(
        self, attempt: int, exc: BaseException, now: datetime, rand: Callable[[], float] = random.random
    ) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``; None: give up (the job failed)."""
        if attempt + 1 >= self.max_attempts or not isinstance(exc, self.retry_on):
            return None
        ceiling = min(self.cap_seconds, self.base_seconds * 2.0**attempt)
        wait = ceiling / 2 + ceiling / 2 * rand()
        if isinstance(exc, RateLimited):
            wait = max(wait, (exc.reset_at(now) - now).total_seconds())
        return wait


NO_RETRY = RetryPolicy(max_attempts=1)


@dataclass(frozen=True, slots=True, kw_only=True)
class JobType(Generic[J]):
    """How one kind of job runs: its handler (an application use case) and policies."""

    job: type[J]
    handler: Callable[[J], Awaitable[object]]
    retry: RetryPolicy = NO_RETRY
    lock: Callable[[J], str] | None = None
    queueing_lock: Callable[[J], str] | None = None
    concurrency_key: Callable[[J], str] | None = None

    @property
    def kind(self) -> str:
        return self.job.kind

    def run(self, args: dict[str, Any]) -> Awaitable[object]:
        return self.handler(decode(self.job, args))


@dataclass(frozen=True, slots=True, kw_only=True)
class Periodic:
    """Scheduled work, run once per deployment (not per worker): every ``seconds``, or at the
    times of ``cron`` (UTC, five fields, e.g. ``"30 16 * * *"`` daily at 16:30). ``call`` gets
    the time it was scheduled for, so a run that starts late still does that slot's work."""

    name: str
    cron: str
    call: Callable[[datetime], Awaitable[object]]
    seconds: int | None = None


def interval_cron(seconds: int) -> str:
    """Every ``seconds``: a six-field cron (seconds last) below a minute, minutes above."""
    if seconds < 60:
        return f"* * * * * */{max(1, seconds)}"
    return f"*/{max(1, seconds // 60)} * * * *"


@dataclass(slots=True)
class JobRegistry:
    """Every job type and periodic task of the deployment; bootstrap fills it, adapters read it."""

    types: dict[str, JobType[Any]] = field(default_factory=dict)
    periodic: list[Periodic] = field(default_factory=list)

    def register(self, job_type: JobType[J]) -> None:
        if job_type.kind in self.types:
            raise ValueError(f"job kind {job_type.kind!r} registered twice")
        self.types[job_type.kind] = job_type

    def every(self, seconds: int, name: str, call: Callable[[], Awaitable[object]]) -> None:
        async def tick(at: datetime) -> object:
            return await call()

        self._add(Periodic(name=name, cron=interval_cron(seconds), call=tick, seconds=seconds))

    def at(self, cron: str, name: str, call: Callable[[datetime], Awaitable[object]]) -> None:
        """``call(scheduled_time)`` at the times of ``cron`` (UTC)."""
        self._add(Periodic(name=name, cron=cron, call=call))

    def _add(self, periodic: Periodic) -> None:
        if any(p.name == periodic.name for p in self.periodic):
            raise ValueError(f"periodic task {periodic.name!r} registered twice")
        self.periodic.append(periodic)

    def of(self, job: Job) -> JobType[Any]:
        try:
            return self.types[job.kind]
        except KeyError:
            raise LookupError(f"no handler registered for job kind {job.kind!r}") from None

    def __iter__(self) -> Iterator[JobType[Any]]:
        return iter(self.types.values())


def encode(job: Job) -> dict[str, Any]:
    """JSON-ready arguments: UUIDs and datetimes as strings."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(job):  # type: ignore[arg-type]
        value = getattr(job, f.name)
        out[f.name] = str(value) if isinstance(value, UUID) else value
        if isinstance(value, datetime):
            out[f.name] = value.astimezone(UTC).isoformat()
    return out


def decode(cls: type[J], args: dict[str, Any]) -> J:
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name not in args and f.default is not dataclasses.MISSING:
            continue  # queued before the field existed: its default
        raw, hint = args[f.name], hints[f.name]
        if hint is UUID and raw is not None:
            raw = UUID(str(raw))
        elif hint is datetime and raw is not None:
            raw = datetime.fromisoformat(str(raw))
        values[f.name] = raw
    return cls(**values)
