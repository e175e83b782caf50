"""Connection use cases on the fake unit of work: what is validated, stored and queued.

The database's part (the unique login index under concurrent requests, deletes on both
databases) is in tests/integration/test_write_promises.py and tests/api/test_same_login.py.
"""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

import pytest

from finsync.application.connections import ConnectionService, ScheduleChange
from finsync.application.provider_authorization import ProviderAuthorizationService
from finsync.application.sync import SyncService
from finsync.domain.entities import Account, Connection, SyncRun
from finsync.domain.enums import AccountType, AuthType, ConnectionStatus, SyncStatus, SyncTrigger
from finsync.domain.errors import (
    AlreadyConnected,
    InvalidInput,
    NotFound,
    ProviderAuthError,
    ProviderNotAvailable,
)
from finsync.domain.jobs import SyncConnection
from finsync.domain.schedule import SyncSchedule
from finsync.infrastructure.security import FernetCipher
from tests.fakes.uow import FakeProviders, MemoryDatabase, fake_uow_factory
from tests.unit.application.conftest import SettableNow

HOURLY = SyncSchedule(default_minutes=60)
USER = uuid4()


@pytest.fixture
def service(
    db: MemoryDatabase, providers: FakeProviders, cipher: FernetCipher, now: SettableNow
) -> ConnectionService:
    uow = fake_uow_factory(db)
    sync = SyncService(uow, providers, cipher, now)
    flows = ProviderAuthorizationService(uow, providers, cipher, sync, "https://finsync.test/cb", now)
    return ConnectionService(uow, providers, cipher, sync, flows, now)


async def test_an_api_key_connection_is_validated_stored_encrypted_and_synced_once(
    service: ConnectionService,
    db: MemoryDatabase,
    providers: FakeProviders,
    cipher: FernetCipher,
    now: SettableNow,
) -> None:
    login = providers.describe("broker", schedule=HOURLY)
    login.keys = ["ACC-1"]

    created = await service.create(USER, "broker", None, None, {"api_key": "  k-123  "})

    assert login.validated == [{"api_key": "k-123"}]  # trimmed, checked once before storing
    stored = db.get(Connection, created.connection.id)
    assert stored is not None
    assert stored.status is ConnectionStatus.ACTIVE
    assert stored.name == "Broker"
    assert stored.credentials is not None
    assert b"k-123" not in stored.credentials
    assert cipher.decrypt(stored.credentials) == {"api_key": "k-123"}
    assert stored.identity is not None  # the login, so it is never connected twice
    assert stored.sync_interval_minutes == 60
    assert stored.next_sync_at is not None
    assert now() + timedelta(minutes=60) <= stored.next_sync_at <= now() + timedelta(minutes=65)
    run = created.sync_run
    assert run is not None
    assert (run.trigger, run.status) == (SyncTrigger.INITIAL, SyncStatus.QUEUED)
    assert db.jobs == [SyncConnection(connection_id=stored.id, run_id=run.id, provider="broker")]


@pytest.mark.parametrize(
    ("credentials", "message"),
    [
        ({"api_key": "k", "password": "p"}, "unknown credential fields for Broker: password"),
        ({"api_key": "   "}, "missing credential fields for Broker: api_key"),
        (None, "missing credential fields for Broker: api_key"),
    ],
)
async def test_bad_credentials_are_refused_before_the_provider_is_called(
    service: ConnectionService,
    db: MemoryDatabase,
    providers: FakeProviders,
    credentials: dict[str, str] | None,
    message: str,
) -> None:
    login = providers.describe("broker")
    with pytest.raises(InvalidInput, match=message):
        await service.create(USER, "broker", None, None, credentials)
    assert login.validated == []
    assert (db.tables.connections, db.jobs, db.commits) == ({}, [], 0)


async def test_credentials_the_provider_rejects_store_nothing(
    service: ConnectionService, db: MemoryDatabase, providers: FakeProviders
) -> None:
    providers.describe("broker").error = ProviderAuthError("Broker rejected the API key")
    with pytest.raises(ProviderAuthError, match="rejected the API key"):
        await service.create(USER, "broker", None, None, {"api_key": "wrong"})
    assert (db.tables.connections, db.tables.sync_runs, db.jobs) == ({}, {}, [])


async def test_environments_default_to_the_first_and_unknown_ones_are_refused(
    service: ConnectionService, db: MemoryDatabase, providers: FakeProviders
) -> None:
    providers.describe("broker", environments=("live", "demo"))
    with pytest.raises(InvalidInput, match="environment must be one of: live, demo"):
        await service.create(USER, "broker", None, "paper", {"api_key": "k"})
    created = await service.create(USER, "broker", "Mine", None, {"api_key": "k"})
    assert created.connection.environment == "live"
    assert created.connection.name == "Mine"


async def test_a_provider_this_server_is_not_configured_for_is_named_with_its_settings(
    service: ConnectionService, providers: FakeProviders
) -> None:
    providers.describe("bank", missing_settings=("FINSYNC_BANK_SECRET_ID",))  # the variables to set
    with pytest.raises(ProviderNotAvailable, match="set FINSYNC_BANK_SECRET_ID"):
        await service.create(USER, "bank", None, None, {"api_key": "k"})
    with pytest.raises(ProviderNotAvailable, match="unknown provider 'nope'"):
        await service.create(USER, "nope", None, None, {"api_key": "k"})


async def test_the_same_login_twice_names_the_connection_that_has_it(
    service: ConnectionService, db: MemoryDatabase, providers: FakeProviders
) -> None:
    providers.describe("broker").keys = ["ACC-1", "ACC-2"]
    first = await service.create(USER, "broker", None, None, {"api_key": "k"})

    providers.logins["broker"].keys = ["ACC-2", "ACC-1"]  # same login, listed in another order
    with pytest.raises(AlreadyConnected) as caught:
        await service.create(USER, "broker", None, None, {"api_key": "another-key-same-login"})

    assert caught.value.connection_id == first.connection.id
    assert list(db.tables.connections) == [first.connection.id]
    assert len(db.jobs) == 1


async def test_a_login_known_only_by_its_synced_accounts_is_not_connected_again(
    service: ConnectionService, db: MemoryDatabase, providers: FakeProviders
) -> None:
    """Connected before identities existed: the stored accounts' keys still find it."""
    old = Connection(user_id=USER, provider="broker", name="Old", status=ConnectionStatus.ACTIVE)
    account = Account(
        user_id=USER,
        connection_id=old.id,
        provider="broker",
        provider_account_id="ACC-9",
        name="Cash",
        type=AccountType.BROKERAGE,
        currency="EUR",
    )
    db.add(old, account)
    providers.describe("broker").keys = ["ACC-9"]
    with pytest.raises(AlreadyConnected) as caught:
        await service.create(USER, "broker", None, None, {"api_key": "k"})
    assert caught.value.connection_id == old.id


async def test_a_new_interval_counts_from_the_last_sync(
    service: ConnectionService, db: MemoryDatabase, providers: FakeProviders, now: SettableNow
) -> None:
    providers.describe("broker", schedule=HOURLY)
    connection = Connection(
        user_id=USER,
        provider="broker",
        name="B",
        status=ConnectionStatus.ACTIVE,
        sync_interval_minutes=60,
        last_synced_at=now() - timedelta(minutes=50),
    )
    db.add(connection)

    longer = await service.update(
        connection.id, USER, None, None, ScheduleChange(interval_set=True, interval=240)
    )
    assert longer.sync_interval_minutes == 240
    assert longer.next_sync_at is not None
    last = now() - timedelta(minutes=50)
    assert last + timedelta(minutes=240) <= longer.next_sync_at <= last + timedelta(minutes=245)

    shorter = await service.update(
        connection.id, USER, None, None, ScheduleChange(interval_set=True, interval=30)
    )
    assert shorter.next_sync_at == now()  # overdue: due now, not in the past

    default = await service.update(connection.id, USER, None, None, ScheduleChange(interval_set=True))
    assert default.sync_interval_minutes == 60
    paused = await service.update(connection.id, USER, None, None, ScheduleChange(enabled=False))
    assert paused.sync_enabled is False
    stored = db.get(Connection, connection.id)
    assert stored is not None
    assert (stored.sync_interval_minutes, stored.sync_enabled) == (60, False)


async def test_schedule_bounds_and_file_connections_are_refused_and_nothing_changes(
    service: ConnectionService, db: MemoryDatabase, providers: FakeProviders
) -> None:
    providers.describe("broker", schedule=HOURLY)
    providers.describe("ofx", auth_type=AuthType.FILE, credentials=frozenset())
    broker = Connection(user_id=USER, provider="broker", name="B", sync_interval_minutes=60)
    files = Connection(user_id=USER, provider="ofx", name="F")
    db.add(broker, files)

    with pytest.raises(InvalidInput, match="between 15 and 10080"):
        await service.update(broker.id, USER, "renamed", None, ScheduleChange(interval_set=True, interval=5))
    with pytest.raises(InvalidInput, match="statement-file connections"):
        await service.update(files.id, USER, None, None, ScheduleChange(enabled=True))
    with pytest.raises(InvalidInput, match="name must not be empty"):
        await service.update(broker.id, USER, "   ", None)
    assert db.get(Connection, broker.id) == broker
    assert db.commits == 0


async def test_replacing_credentials_revalidates_and_reactivates(
    service: ConnectionService, db: MemoryDatabase, providers: FakeProviders, cipher: FernetCipher
) -> None:
    providers.describe("broker").keys = ["ACC-1"]
    broken = Connection(
        user_id=USER,
        provider="broker",
        name="B",
        status=ConnectionStatus.NEEDS_REAUTH,
        credentials=cipher.encrypt({"api_key": "old"}),
        last_error="rejected",
        failure_count=3,
    )
    db.add(broken)

    providers.logins["broker"].error = ProviderAuthError("still wrong")
    with pytest.raises(ProviderAuthError):
        await service.update(broken.id, USER, None, {"api_key": "wrong"})
    assert db.get(Connection, broken.id) == broken  # the old credentials stay on failure

    providers.logins["broker"].error = None
    fixed = await service.update(broken.id, USER, None, {"api_key": "new"})
    assert (fixed.status, fixed.last_error, fixed.failure_count) == (ConnectionStatus.ACTIVE, None, 0)
    stored = db.get(Connection, broken.id)
    assert stored is not None
    assert stored.credentials is not None
    assert cipher.decrypt(stored.credentials) == {"api_key": "new"}


async def test_browser_providers_renew_credentials_by_reauthorizing(
    service: ConnectionService, db: MemoryDatabase, providers: FakeProviders
) -> None:
    providers.describe("bank", auth_type=AuthType.OAUTH2, credentials=frozenset())
    connection = Connection(user_id=USER, provider="bank", name="Bank", status=ConnectionStatus.ACTIVE)
    db.add(connection)
    with pytest.raises(InvalidInput, match=r"renewed with POST \.\.\./reauthorize"):
        await service.update(connection.id, USER, None, {"token": "x"})
    with pytest.raises(InvalidInput, match="connected in the browser; send no credentials"):
        await service.create(USER, "bank", None, None, {"token": "x"})


async def test_delete_takes_the_runs_and_only_the_owner_may(
    service: ConnectionService, db: MemoryDatabase, now: SettableNow
) -> None:
    connection = Connection(user_id=USER, provider="broker", name="B")
    run = SyncRun(user_id=USER, connection_id=connection.id, trigger=SyncTrigger.MANUAL, started_at=now())
    db.add(connection, run)

    with pytest.raises(NotFound, match="connection not found"):
        await service.delete(connection.id, uuid4())  # another user's id: not found, not forbidden
    assert db.get(Connection, connection.id) is not None

    await service.delete(connection.id, USER)
    assert (db.tables.connections, db.tables.sync_runs) == ({}, {})
    with pytest.raises(NotFound):
        await service.delete(connection.id, USER)
