"""Order ports are kept per connection: built once, rebuilt when the credentials change, and
closed only once no order uses them (a port retired mid-order finishes that order first)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from uuid import uuid4

import pytest

from finsync.application.trading import OrderPorts
from finsync.domain.entities import Connection
from finsync.domain.enums import Capability
from finsync.domain.errors import InvalidInput
from finsync.domain.ports import ProviderSession, SendSlot
from finsync.domain.trading import BrokerOrder, OrderRequest


class Port:
    def __init__(self, session: ProviderSession) -> None:
        self.key, self.closed = session.credentials["key"], False

    def order_problem(self, order: OrderRequest) -> str | None:
        return None

    async def reserve_send(self, order: OrderRequest) -> SendSlot | None:
        return None

    async def place_order(
        self, order: OrderRequest, client_order_id: str, slot: SendSlot | None = None
    ) -> BrokerOrder:
        raise NotImplementedError

    async def find_orders(
        self, order: OrderRequest, client_order_id: str, sent_at: datetime
    ) -> list[BrokerOrder]:
        return []

    async def get_order(self, broker_order_id: str) -> BrokerOrder:
        raise NotImplementedError

    async def cancel_order(self, broker_order_id: str) -> None:
        return None

    async def open_orders(self) -> list[BrokerOrder]:
        return []

    async def aclose(self) -> None:
        self.closed = True


class Gateway:
    def __init__(self) -> None:
        self.built: list[Port] = []

    def capabilities(self, provider: str) -> frozenset[Capability]:
        return frozenset({Capability.TRADING}) if provider == "broker" else frozenset()

    def adapter(self, provider: str, session: ProviderSession) -> Port:
        self.built.append(Port(session))
        return self.built[-1]


class Cipher:
    def encrypt(self, credentials: dict[str, Any]) -> bytes:
        return json.dumps(credentials).encode()

    def decrypt(self, token: bytes) -> dict[str, Any]:
        return dict(json.loads(token))


def connection(key: str, provider: str = "broker") -> Connection:
    return Connection(
        user_id=uuid4(),
        provider=provider,
        name="c",
        environment="paper",
        credentials=Cipher().encrypt({"key": key}),
    )


async def test_a_port_is_kept_rebuilt_for_new_credentials_and_closed_when_unused() -> None:
    gateway = Gateway()
    ports = OrderPorts(gateway, Cipher())  # type: ignore[arg-type]
    conn = connection("fake-key-1")
    async with ports.lease(conn) as first:
        pass
    async with ports.lease(conn) as again:
        assert again is first
    assert len(gateway.built) == 1
    assert not first.closed

    async with ports.lease(conn) as old:
        conn.credentials = Cipher().encrypt({"key": "fake-key-2"})
        async with ports.lease(conn) as new:
            assert new is not old
            assert new.key == "fake-key-2"
        assert not old.closed  # type: ignore[attr-defined]  # still in use by this order
    assert old.closed
    assert not new.closed

    await ports.aclose()
    assert new.closed  # type: ignore[attr-defined]


async def test_least_recently_used_ports_are_closed_beyond_the_size() -> None:
    gateway = Gateway()
    ports = OrderPorts(gateway, Cipher(), size=2)  # type: ignore[arg-type]
    conns = [connection(f"fake-key-{i}") for i in range(3)]
    for conn in conns:
        async with ports.lease(conn):
            pass
    assert [p.closed for p in gateway.built] == [True, False, False]


async def test_a_provider_that_cannot_trade_is_refused_and_nothing_is_kept() -> None:
    ports = OrderPorts(Gateway(), Cipher())  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        async with ports.lease(connection("fake-key", provider="bank")):
            pass
