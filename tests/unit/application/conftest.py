"""Use cases over the fake unit of work (tests/fakes/uow.py): no database, no server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography.fernet import Fernet

from finsync.infrastructure.security import FernetCipher
from tests.fakes.uow import FakeJobQueue, FakeProviders, MemoryDatabase

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class SettableNow:
    """The ``Now`` port, moved by the test."""

    def __init__(self, at: datetime = START) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> None:
        self.at += timedelta(**delta)


@pytest.fixture
def db() -> MemoryDatabase:
    return MemoryDatabase()


@pytest.fixture
def now() -> SettableNow:
    return SettableNow()


@pytest.fixture
def providers() -> FakeProviders:
    return FakeProviders()


@pytest.fixture
def queue() -> FakeJobQueue:
    return FakeJobQueue()


@pytest.fixture(scope="session")
def cipher() -> FernetCipher:
    return FernetCipher([Fernet.generate_key().decode()])
