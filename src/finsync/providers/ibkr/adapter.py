"""IBKR Flex adapter: one statement per sync (SendRequest → GetStatement), one account per
``accountId`` in it.

The Flex query fixes the period (e.g. the last 365 days); every sync reads the whole
statement and the sync service's upsert keeps only what changed, so the adapter keeps no
cursor. ``fetch_accounts`` fetches and parses; the per-account methods read what it kept.

ibflex (the mappers, the statement parser) is imported when a statement is first read, not
when the registry imports this package: it costs ~0.3 s of CPU that every ``finsync`` command
and worker would otherwise pay at start-up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Unpack

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from finsync.domain.errors import BadData
from finsync.domain.ports import ProviderSession
from finsync.domain.records import ProviderAccount, ProviderHolding, TransactionBatch
from finsync.providers import common
from finsync.providers.ibkr.client import LIMITS, PROVIDER, FlexClient
from finsync.providers.spec import ProviderSettings

if TYPE_CHECKING:
    from ibflex import Types

NAME = "Interactive Brokers"
USER_AGENT = "finsync (IBKR Flex Web Service v3)"


class IbkrSettings(ProviderSettings):
    """``FINSYNC_IBKR_URL``: the Flex Web Service (IBKR's host by default);
    ``FINSYNC_IBKR_MAX_WAIT_SECONDS``: how long one sync may wait for IBKR to generate a
    statement (polling every ~5 s) before it fails and the next sync tries again."""

    model_config = SettingsConfigDict(env_prefix="FINSYNC_IBKR_")

    url: str = "https://ndcdyn.interactivebrokers.com/AccountManagement/FlexWebService"
    max_wait_seconds: float = Field(default=300.0, ge=10.0, le=3600.0)


class IbkrAdapter:
    def __init__(self, client: FlexClient, session: ProviderSession) -> None:
        self.client, self.session = client, session
        self._statements: dict[str, Types.FlexStatement] | None = None

    async def validate(self) -> list[str]:
        """SendRequest alone, without retries or waiting (a person waits): IBKR checks the token
        and the query id there. The accounts are known after the first statement."""
        await self.client.send_request(retries=0)
        return []

    async def _load(self) -> dict[str, Types.FlexStatement]:
        if self._statements is None:
            response = await self.client.statement()
            statements: dict[str, Types.FlexStatement] = {}
            for stmt in response.FlexStatements:
                if stmt.accountId in statements:
                    raise BadData(f"ibkr: account {stmt.accountId} appears twice in one statement")
                statements[stmt.accountId] = stmt
            if not statements:
                raise BadData("ibkr: the Flex statement holds no account (check the query's accounts)")
            self._statements = statements
        return self._statements

    async def fetch_accounts(self) -> list[ProviderAccount]:
        from finsync.providers.ibkr import mappers

        return [mappers.map_account(stmt) for stmt in (await self._load()).values()]

    async def _statement(self, account: ProviderAccount) -> Types.FlexStatement:
        stmt = (await self._load()).get(account.provider_account_id)
        if stmt is None:
            raise BadData(f"ibkr: the statement no longer holds account {account.provider_account_id}")
        return stmt

    async def fetch_holdings(self, account: ProviderAccount) -> list[ProviderHolding]:
        from finsync.providers.ibkr import mappers

        return mappers.holdings(await self._statement(account))

    async def fetch_transactions(self, account: ProviderAccount) -> TransactionBatch:
        from finsync.providers.ibkr import mappers

        return TransactionBatch(transactions=mappers.transactions(await self._statement(account)))

    async def aclose(self) -> None:
        await self.client.http.aclose()


def create_adapter(
    session: ProviderSession, settings: IbkrSettings, **host: Unpack[common.HostOptions]
) -> IbkrAdapter:
    """Credentials ``token`` (the Flex Web Service token) and ``query_id``."""
    token = common.credential(session, "token", required_by=NAME)
    query_id = common.credential(session, "query_id", required_by=NAME)
    base = settings.url.rstrip("/") + "/"
    http = common.key_http(
        provider=PROVIDER,
        base_url=base,
        key=token,
        headers={"User-Agent": USER_AGENT},
        limits=LIMITS,
        timeout=settings.timeout_seconds,
        **host,
    )
    return IbkrAdapter(FlexClient(http, base, token, query_id, max_wait=settings.max_wait_seconds), session)
