"""GoCardlessClient's 429 and 401 handling against small in-memory GoCardless handlers."""

from __future__ import annotations

from collections import Counter

import httpx
import pytest

from finsync.domain.errors import ProviderAuthError, RateLimited
from finsync.providers.gocardless.client import BankLimitReached, GoCardlessClient
from finsync.providers.gocardless.tokens import GoCardlessTokens
from finsync.providers.ratelimit import RESET_MARGIN
from tests.fakes.clock import VirtualClock

pytestmark = pytest.mark.unit
BASE = "https://gc.test/api/v2"


class Api:
    """Token endpoints plus a scripted queue of answers for ``/accounts/a/balances/``."""

    def __init__(self, *answers: httpx.Response) -> None:
        self.answers = list(answers)
        self.calls: Counter[str] = Counter()
        self.minted = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/api/v2/")
        self.calls[path] += 1
        if path == "token/new/":
            self.minted += 1
            return httpx.Response(200, json={"access": f"tok-{self.minted}", "access_expires": 86400,
                                             "refresh": "r", "refresh_expires": 2592000})  # fmt: skip
        if path == "token/refresh/":
            return httpx.Response(401, json={"summary": "Invalid token", "status_code": 401})
        return self.answers.pop(0)


def client(api: Api, clock: VirtualClock) -> GoCardlessClient:
    transport = httpx.MockTransport(api)
    tokens = GoCardlessTokens(base_url=BASE, secret_id="id-1234", secret_key="key-1234", clock=clock,
                              transport=transport)  # fmt: skip
    return GoCardlessClient(base_url=BASE, tokens=tokens, clock=clock, transport=transport)


def limited(**headers: str) -> httpx.Response:
    body = {"summary": "Rate limit exceeded", "detail": "Try again in 120 seconds", "status_code": 429}
    return httpx.Response(429, json=body, headers=headers)


async def test_per_minute_limit_waits_for_the_relative_reset() -> None:
    clock = VirtualClock()
    api = Api(
        limited(HTTP_X_RATELIMIT_REMAINING="0", HTTP_X_RATELIMIT_RESET="42"), httpx.Response(200, json={})
    )
    gc = client(api, clock)
    try:
        await gc.account_data("a", "balances")
    finally:
        await gc.aclose()
    assert clock.slept == pytest.approx(42 + RESET_MARGIN)  # whole seconds: waited with the margin
    assert api.calls["accounts/a/balances/"] == 2


async def test_bank_daily_limit_is_raised_at_once() -> None:
    clock = VirtualClock()
    api = Api(
        limited(HTTP_X_RATELIMIT_ACCOUNT_SUCCESS_REMAINING="0", HTTP_X_RATELIMIT_ACCOUNT_SUCCESS_RESET="7200")
    )
    gc = client(api, clock)
    try:
        with pytest.raises(BankLimitReached) as caught:
            await gc.account_data("a", "balances")
    finally:
        await gc.aclose()
    assert isinstance(caught.value, RateLimited)
    assert caught.value.retry_after == 7200
    assert api.calls["accounts/a/balances/"] == 1
    assert clock.slept == 0


async def test_bank_limit_without_reset_header_reads_the_detail() -> None:
    clock = VirtualClock()
    api = Api(limited(**{"x-ratelimit-account-success-remaining": "0"}))
    gc = client(api, clock)
    try:
        with pytest.raises(BankLimitReached) as caught:
            await gc.account_data("a", "balances")
    finally:
        await gc.aclose()
    assert caught.value.retry_after == 120


async def test_401_renews_the_shared_token_once() -> None:
    clock = VirtualClock()
    unauthorized = httpx.Response(
        401, json={"summary": "Invalid token", "detail": "expired", "status_code": 401}
    )
    api = Api(unauthorized, httpx.Response(200, json={"balances": []}), unauthorized, unauthorized)
    gc = client(api, clock)
    try:
        body, _ = await gc.account_data("a", "balances")
        assert body == {"balances": []}
        assert api.minted == 2  # refresh refused (401): a new pair was minted
        with pytest.raises(ProviderAuthError, match="Invalid token"):
            await gc.account_data("a", "balances")
    finally:
        await gc.aclose()
    assert api.calls["accounts/a/balances/"] == 4


async def test_a_token_refused_twice_is_not_reused() -> None:
    unauthorized = httpx.Response(401, json={"summary": "Invalid token", "status_code": 401})
    api = Api(unauthorized, unauthorized, httpx.Response(200, json={"balances": []}))
    gc = client(api, VirtualClock())
    try:
        with pytest.raises(ProviderAuthError):
            await gc.account_data("a", "balances")
        await gc.account_data("a", "balances")
    finally:
        await gc.aclose()
    assert api.minted == 3  # tok-1 and tok-2 refused, then a new token rather than tok-2 again
