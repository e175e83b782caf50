"""Every provider client shares the process's one TLS context: building a context loads the CA
bundle (25-50 ms of CPU), which a client per sync, per authorisation or per exchange instance
would otherwise pay each time (and the test suite some 700 times)."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Any

import pytest

from finsync.providers.ccxt import binance
from finsync.providers.enablebanking.client import EnableBankingClient
from finsync.providers.gocardless.client import GoCardlessClient
from finsync.providers.gocardless.tokens import GoCardlessTokens
from finsync.providers.http import ProviderHttp, tls_context
from finsync.providers.schwab.flow import SchwabFlow
from tests.fakes.clock import VirtualClock
from tests.integration.providers.exchanges import build_exchange, exchange_session

pytestmark = pytest.mark.unit


@pytest.fixture
def contexts_built(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the TLS contexts made after the shared one exists (the CA loads); aiohttp (under
    ccxt) builds one of its own once, when imported."""
    tls_context()
    import aiohttp.connector  # noqa: F401

    made: list[int] = []
    real: Callable[..., ssl.SSLContext] = ssl.create_default_context

    def counting(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        made.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(ssl, "create_default_context", counting)
    return made


async def test_the_stdlib_counter_sees_a_client_that_loads_its_own_bundle(contexts_built: list[int]) -> None:
    """The check below can fail: a default httpx transport is seen building a context."""
    import httpx

    await httpx.AsyncHTTPTransport().aclose()
    assert contexts_built == [1]


async def test_provider_clients_build_no_tls_context_of_their_own(contexts_built: list[int]) -> None:
    clock = VirtualClock()
    clients: list[Any] = [
        ProviderHttp(provider="acme", base_url="https://acme.test", clock=clock),
        GoCardlessClient(
            base_url="https://bank.test",
            tokens=GoCardlessTokens(base_url="https://bank.test", secret_id="fake-id", secret_key="fake-key"),
            clock=clock,
        ),
        EnableBankingClient(base_url="https://eb.test", signer=None, clock=clock),  # type: ignore[arg-type]
    ]
    flow = SchwabFlow(app_key="fake-app-key", app_secret="fake-app-secret", auth_url="https://schwab.test")
    async with flow._client():
        pass
    exchange = build_exchange(binance, {}, exchange_session({"apiKey": "fake", "secret": "fake"}), clock)
    exchange.ex.open()  # ccxt builds its session (and, unless given one, its TLS context) here
    try:
        assert exchange.ex.ssl_context is tls_context()
    finally:
        await exchange.ex.close()
        for client in clients:
            await client.aclose()
    assert contexts_built == []
