"""Provider client benchmark: ``python benchmarks/provider_clients.py [--runs R]``.

What it costs in CPU to build (and close) the HTTP client of each provider whose client is
made per sync or per authorisation: GoCardless, Enable Banking, Schwab's OAuth client, a
ccxt exchange (Binance) and the shared ``ProviderHttp``. Building a TLS context loads the
CA bundle (25-50 ms of CPU); every client should use the process's one context
(``providers.http.tls_context``), so each figure should be a fraction of a millisecond.
Medians of R runs of ``time.process_time`` after one warm-up (imports, the shared context).
No network: nothing is sent. Compare with another tree: ``PYTHONPATH=<its src>``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for the ccxt exchange module

from finsync.domain.ports import ProviderSession
from finsync.providers.ccxt import binance
from finsync.providers.enablebanking.client import EnableBankingClient
from finsync.providers.gocardless.client import GoCardlessClient
from finsync.providers.gocardless.tokens import GoCardlessTokens
from finsync.providers.http import ProviderHttp
from finsync.providers.schwab.flow import SchwabFlow


async def gocardless() -> None:
    tokens = GoCardlessTokens(base_url="https://bank.test", secret_id="fake-id", secret_key="fake-key")
    await GoCardlessClient(base_url="https://bank.test", tokens=tokens).aclose()


async def enablebanking() -> None:
    await EnableBankingClient(base_url="https://eb.test", signer=None).aclose()  # type: ignore[arg-type]


async def schwab() -> None:
    flow = SchwabFlow(app_key="fake-app-key", app_secret="fake-app-secret", auth_url="https://schwab.test")
    async with flow._client():  # the OAuth client of one token exchange or refresh
        pass


async def exchange() -> None:
    session = ProviderSession(
        connection_id=uuid.uuid4(), credentials={"apiKey": "fake", "secret": "fake"}, state={}
    )
    factory = binance.METADATA.adapter_factory
    assert factory is not None
    made: Any = factory(session, binance.EXCHANGE.settings(_env_file=None))
    made.ex.open()  # ccxt builds its HTTP session here
    await made.ex.close()


async def provider_http() -> None:
    await ProviderHttp(provider="acme", base_url="https://acme.test").aclose()


CLIENTS: dict[str, Callable[[], Awaitable[None]]] = {
    "GoCardless client": gocardless,
    "Enable Banking client": enablebanking,
    "Schwab OAuth client": schwab,
    "ccxt exchange (Binance)": exchange,
    "ProviderHttp": provider_http,
}


async def main(runs: int) -> None:
    print(f"CPU per client built and closed, median of {runs} (min):")
    for name, make in CLIENTS.items():
        await make()  # warm-up
        spent = []
        for _ in range(runs):
            started = time.process_time()
            await make()
            spent.append((time.process_time() - started) * 1000)
        print(f"  {name:<26} {statistics.median(spent):7.2f} ms  ({min(spent):.2f})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    asyncio.run(main(parser.parse_args().runs))
