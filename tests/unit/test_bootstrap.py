"""The composition root: every dependency can be swapped by keyword, the rest stays real."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import pytest
from cryptography.fernet import Fernet

from finsync.bootstrap import Container, build, default_job_queue
from finsync.domain.categories import CategoryKind, Rule, RuleConditions
from finsync.domain.jobs import JobRegistry, SyncConnection
from finsync.infrastructure.jobs import JobBackend
from finsync.infrastructure.security import FernetCipher
from finsync.providers.registry import ProviderRegistry
from tests.conftest import make_settings
from tests.fakes.hashing import CHEAP_HASHER
from tests.fakes.uow import MemoryDatabase, fake_uow_factory

NOON = datetime(2026, 1, 2, 12, tzinfo=UTC)


async def test_what_build_is_given_is_what_the_use_cases_get(tmp_path: Path) -> None:
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}", tmp_path)
    db = MemoryDatabase()
    cipher = FernetCipher([Fernet.generate_key().decode()])
    registry = ProviderRegistry([])
    given: list[JobRegistry] = []

    def job_queue(types: JobRegistry) -> JobBackend:
        given.append(types)
        return default_job_queue(settings)(types)

    container = build(
        settings,
        clock=lambda: NOON,
        registry=registry,
        hasher=CHEAP_HASHER,
        cipher=cipher,
        job_queue=job_queue,
        uow=fake_uow_factory(db),
    )
    try:
        assert (container.clock(), container.registry, container.cipher) == (NOON, registry, cipher)
        assert given == [container.job_types]  # the queue runs the job types build registered
        assert SyncConnection.kind in container.job_types.types

        user = uuid4()
        category = await container.labels.create_category(user, "Coffee", CategoryKind.EXPENSE, None)
        rule = Rule(
            user_id=user,
            name="Coffee",
            conditions=RuleConditions(description_contains="coffee"),
            category_id=category.id,
        )
        await container.labels.create_rule(rule)
        updated = await container.labels.update_rule(rule)
        assert updated.updated_at == NOON  # the injected clock
        assert rule.id in db.tables.rules  # the injected unit of work
    finally:
        await container.aclose()


def test_the_container_is_built_by_keyword_only() -> None:
    with pytest.raises(TypeError):
        Container(*range(3))  # type: ignore[call-arg]
