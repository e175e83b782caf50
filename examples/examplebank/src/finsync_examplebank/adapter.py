"""Example Bank sync adapter: accounts, then each account's transactions since its cursor."""

from typing import Unpack

from pydantic_settings import SettingsConfigDict

from finsync.domain.ports import ProviderSession
from finsync.domain.records import ProviderAccount, TransactionBatch
from finsync.providers import common
from finsync.providers.spec import ProviderSettings
from finsync_examplebank import mappers
from finsync_examplebank.client import LIMITS, ExampleBankClient


class ExampleBankSettings(ProviderSettings):
    """``FINSYNC_EXAMPLEBANK_URL``: the API host (a proxy or a test server)."""

    model_config = SettingsConfigDict(env_prefix="FINSYNC_EXAMPLEBANK_")

    url: str = "https://api.examplebank.invalid"


class ExampleBankAdapter:
    def __init__(self, client: ExampleBankClient, session: ProviderSession) -> None:
        self.client, self.session = client, session

    async def validate(self) -> list[str]:
        """One call, no retries (a person waits): the key's accounts, or ProviderAuthError."""
        return [mappers.map_account(a).provider_account_id for a in await self.client.accounts(retries=0)]

    async def fetch_accounts(self) -> list[ProviderAccount]:
        return [mappers.map_account(a) for a in await self.client.accounts()]

    async def fetch_transactions(self, account: ProviderAccount) -> TransactionBatch:
        # session.state belongs to this connection, which has several accounts: one cursor each.
        cursors: dict[str, str] = self.session.state.setdefault("cursors", {})
        key = account.provider_account_id
        items, cursors[key] = await self.client.transactions(key, cursors.get(key))
        return TransactionBatch(transactions=[mappers.map_transaction(t, account.currency) for t in items])

    async def aclose(self) -> None:
        await self.client.http.aclose()


def create_adapter(
    session: ProviderSession, settings: ExampleBankSettings, **host: Unpack[common.HostOptions]
) -> ExampleBankAdapter:
    key = common.credential(session, "api_key", required_by="Example Bank")
    http = common.key_http(
        provider="examplebank",
        base_url=settings.url,
        key=key,
        headers={"Authorization": f"Bearer {key}"},
        limits=LIMITS,
        timeout=settings.timeout_seconds,
        **host,
    )
    return ExampleBankAdapter(ExampleBankClient(http), session)
