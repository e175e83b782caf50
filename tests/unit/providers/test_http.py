"""ProviderHttp against httpx.MockTransport handlers that behave like small provider servers."""

from __future__ import annotations

import asyncio
import math
import socket
import uuid
from collections.abc import Callable
from decimal import Decimal

import httpx
import pytest
from structlog.testing import capture_logs

from finsync.domain.errors import (
    BadData,
    ProviderAuthError,
    ProviderError,
    RateLimited,
    ScopeError,
    Unavailable,
)
from finsync.providers.http import SHARED_BUCKET, ProviderHttp, RateLimit
from finsync.providers.ratelimit import SHARED_BUCKETS
from tests.fakes.clock import VirtualClock

pytestmark = pytest.mark.unit

Handler = Callable[[httpx.Request], httpx.Response]


def make(clock: VirtualClock, handler: Handler, **kwargs: object) -> ProviderHttp:
    return ProviderHttp(
        provider="acme",
        base_url=str(kwargs.pop("base_url", "https://acme.test")),
        clock=clock,
        transport=httpx.MockTransport(handler),
        **kwargs,  # type: ignore[arg-type]
    )


async def test_json_numbers_become_decimals() -> None:
    clock = VirtualClock()
    http = make(clock, lambda r: httpx.Response(200, content=b'{"a": 0.1, "b": [1.10, 3], "c": "x"}'))
    async with http:
        body = await http.get_json("/x", endpoint="x")
    assert body == {"a": Decimal("0.1"), "b": [Decimal("1.10"), 3], "c": "x"}
    assert str(body["b"][0]) == "1.10"


async def test_malformed_json_is_bad_data() -> None:
    http = make(VirtualClock(), lambda r: httpx.Response(200, content=b'{"a": 1,'))
    with pytest.raises(BadData, match="acme x sent malformed JSON"):
        await http.get_json("/x", endpoint="x")


@pytest.mark.parametrize(
    ("status", "error"),
    [(401, ProviderAuthError), (403, ScopeError), (404, ProviderError), (422, ProviderError)],
)
async def test_client_errors_map_to_typed_errors(status: int, error: type[ProviderError]) -> None:
    http = make(
        VirtualClock(),
        lambda r: httpx.Response(status, json={"code": 1, "message": "why it failed"}),
    )
    with pytest.raises(error, match=f"acme things answered HTTP {status}: why it failed") as info:
        await http.get_json("/things", endpoint="things")
    assert type(info.value) is error


async def test_error_message_hook_extracts_provider_reason() -> None:
    http = make(
        VirtualClock(),
        lambda r: httpx.Response(400, json={"errors": [{"detail": "bad date"}]}),
        error_message=lambda resp: resp.json()["errors"][0]["detail"],
    )
    with pytest.raises(ProviderError, match="bad date"):
        await http.request("GET", "/x", endpoint="x")


async def test_429_waits_until_reset_then_succeeds() -> None:
    clock = VirtualClock()
    reset = math.ceil(clock.now()) + 30
    answers = [
        httpx.Response(429, headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)}),
        httpx.Response(200, json={"ok": True}),
    ]
    seen: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(clock.now())
        return answers.pop(0)

    http = make(clock, handler, limits={"x": RateLimit(10, 1)})
    assert await http.get_json("/x", endpoint="x") == {"ok": True}
    assert seen[1] >= reset


async def test_429_without_headers_uses_retry_after() -> None:
    clock = VirtualClock()
    answers = [httpx.Response(429, headers={"Retry-After": "7"}), httpx.Response(204)]
    start = clock.now()
    http = make(clock, lambda r: answers.pop(0))
    response = await http.request("GET", "/x", endpoint="x")
    assert response.status_code == 204
    assert clock.now() - start >= 7


async def test_persistent_429_raises_rate_limited_with_retry_after() -> None:
    clock = VirtualClock()

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"X-RateLimit-Reset": str(math.ceil(clock.now()) + 60)})

    http = make(clock, handler, max_retries=2)
    with pytest.raises(RateLimited) as info:
        await http.request("GET", "/x", endpoint="x")
    assert 59 <= info.value.retry_after <= 61
    assert info.value.retry_at is not None


async def test_server_errors_are_retried_with_backoff() -> None:
    clock = VirtualClock()
    answers = [httpx.Response(503), httpx.Response(500), httpx.Response(200, json=[])]
    http = make(clock, lambda r: answers.pop(0))
    start = clock.now()
    with capture_logs() as logs:
        assert await http.get_json("/x", endpoint="x") == []
    assert clock.now() > start  # backed off on the virtual clock
    assert [entry["retries"] for entry in logs if entry["event"] == "provider_request"] == [2]


async def test_persistent_server_error_is_unavailable() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(502)

    http = make(VirtualClock(), handler, max_retries=3)
    with pytest.raises(Unavailable, match=r"acme positions unavailable after 4 attempts: HTTP 502"):
        await http.request("GET", "/p", endpoint="positions")
    assert calls == 4


async def test_timeouts_are_retried_then_unavailable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    http = make(VirtualClock(), handler, max_retries=1)
    expected = r"after 2 attempts: acme\.test did not answer in time \(ReadTimeout\)"
    with pytest.raises(Unavailable, match=expected):
        await http.request("GET", "/p", endpoint="p")


async def test_post_is_not_retried_on_server_error_unless_asked() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(500) if calls == 1 else httpx.Response(200)

    http = make(VirtualClock(), handler)
    with pytest.raises(Unavailable):
        await http.request("POST", "/orders", endpoint="orders", json={})
    assert calls == 1
    assert (await http.request("POST", "/token", endpoint="token", retry=True)).status_code == 200


async def test_client_side_limit_spaces_requests() -> None:
    clock = VirtualClock()
    seen: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(clock.now())
        return httpx.Response(200, json={})

    http = make(clock, handler, limits={"slow": RateLimit(2, 10)})
    for _ in range(5):
        await http.get_json("/x", endpoint="slow")
    assert all(later - earlier >= 10 for earlier, later in zip(seen, seen[2:], strict=False))
    assert seen[-1] - seen[0] < 21  # no more waiting than the limit needs


async def test_concurrent_callers_share_one_bucket() -> None:
    clock = VirtualClock()
    seen: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(clock.now())
        return httpx.Response(200, json={})

    http = make(clock, handler, limits={SHARED_BUCKET: RateLimit(3, 60)})
    await asyncio.gather(*(http.get_json(f"/{i}", endpoint=f"e{i % 2}") for i in range(7)))
    seen.sort()
    assert all(later - earlier >= 60 for earlier, later in zip(seen, seen[3:], strict=False))


async def test_remaining_zero_header_blocks_until_reset() -> None:
    clock = VirtualClock()
    reset = math.ceil(clock.now()) + 45
    seen: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(clock.now())
        return httpx.Response(
            200, json={}, headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)}
        )

    http = make(clock, handler, limits={"x": RateLimit(100, 60)})
    await http.get_json("/x", endpoint="x")
    await http.get_json("/x", endpoint="x")
    assert seen[1] >= reset


async def test_lower_remaining_header_tightens_local_budget() -> None:
    clock = VirtualClock()
    seen: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(clock.now())
        # another client already used most of the shared budget
        headers = {"x-ratelimit-remaining": "1", "x-ratelimit-reset": str(math.ceil(clock.now()) + 60)}
        return httpx.Response(200, json={}, headers=headers)

    http = make(clock, handler, limits={"x": RateLimit(10, 60)})
    for _ in range(3):
        await http.get_json("/x", endpoint="x")
    assert seen[2] - seen[0] >= 59


async def test_secrets_never_reach_exceptions_or_logs() -> None:
    secret = "sk-very-secret-value"

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"message": f"key {secret} is not valid"})

    http = make(VirtualClock(), handler, headers={"X-Api-Key": secret})
    with capture_logs() as logs, pytest.raises(ProviderAuthError) as info:
        await http.get_json(f"/x?token={secret}", endpoint="x", params={"api_key": secret})
    assert secret not in str(info.value)
    assert "***" in str(info.value)
    assert info.value.__cause__ is None
    assert secret not in repr(logs)
    assert logs[0]["path"] == "/x"
    assert logs[0]["status"] == 401


async def test_waits_beyond_max_wait_raise_instead_of_blocking() -> None:
    clock = VirtualClock()

    def handler(request: httpx.Request) -> httpx.Response:  # a reset in milliseconds, say
        return httpx.Response(429, headers={"x-ratelimit-reset": str(int(clock.now() * 1000))})

    http = make(clock, handler, max_wait=600)
    start = clock.now()
    with pytest.raises(RateLimited) as info:
        await http.request("GET", "/x", endpoint="x")
    assert info.value.retry_after > 600
    assert clock.now() == start


async def test_refused_connections_are_retried_even_for_post() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(201)

    http = make(VirtualClock(), handler)
    with capture_logs() as logs:
        assert (await http.request("POST", "/orders", endpoint="orders", json={})).status_code == 201
    assert calls == 2
    assert [(e["status"], e["retries"]) for e in logs] == [(201, 1)]  # one line per request


async def test_clients_of_one_account_share_buckets_keyed_without_the_secret() -> None:
    clock = VirtualClock()
    seen: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(clock.now())
        return httpx.Response(200, json={})

    account = f"acct-key-{uuid.uuid4()}"  # fresh: the buckets outlive this test
    limits = {"x": RateLimit(1, 30)}
    for _ in range(2):  # e.g. validation, then the first sync
        async with make(clock, handler, limits=limits, account=account) as http:
            await http.get_json("/x", endpoint="x")
    async with make(clock, handler, limits=limits, account=f"acct-key-{uuid.uuid4()}") as http:
        await http.get_json("/x", endpoint="x")
    assert seen[1] - seen[0] >= 30
    assert seen[2] == seen[1]  # another account has its own budget
    assert not any(account in key for key in SHARED_BUCKETS)


async def test_bearer_request_retries_a_rejected_token_once() -> None:
    asked: list[str | None] = []
    sent: list[str] = []

    async def token_source(rejected: str | None) -> str:
        asked.append(rejected)
        return f"tok-{len(asked)}"

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.headers["authorization"])
        if request.headers["authorization"] == "Bearer tok-1":
            return httpx.Response(401, json={"message": "token expired"})
        return httpx.Response(200, content=b'{"a": 1.5}')

    async with make(VirtualClock(), handler) as http:
        response = await http.bearer_request(token_source, "GET", "/x", endpoint="x", params={"q": "1"})
        assert http.decode(response, "x") == {"a": Decimal("1.5")}
    assert asked == [None, "tok-1"]
    assert sent == ["Bearer tok-1", "Bearer tok-2"]


async def test_bearer_request_raises_the_second_rejection() -> None:
    asked: list[str | None] = []

    async def token_source(rejected: str | None) -> str:
        asked.append(rejected)
        return f"tok-{len(asked)}"

    async with make(VirtualClock(), lambda r: httpx.Response(401, json={"message": "no"})) as http:
        with pytest.raises(ProviderAuthError, match="acme x answered HTTP 401: no"):
            await http.bearer_request(token_source, "POST", "/x", endpoint="x", json={})
    assert asked == [None, "tok-1"]


def _refused(request: httpx.Request) -> httpx.Response:
    """What httpx raises when nothing listens: the OS error is chained below its ConnectError."""
    try:
        raise ConnectionRefusedError(111, "Connect call failed")
    except ConnectionRefusedError as cause:
        raise httpx.ConnectError("All connection attempts failed", request=request) from cause


async def test_refused_attempts_spend_no_rate_limit_slot() -> None:
    clock = VirtualClock()
    attempts = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal attempts
        attempts += 1
        return _refused(request) if attempts <= 6 else httpx.Response(200, json={})

    http = make(clock, handler, limits={"x": RateLimit(1, 60)}, max_retries=2)
    start = clock.now()
    with pytest.raises(Unavailable):  # an outage: three refused attempts, never at the server
        await http.get_json("/x", endpoint="x")
    with pytest.raises(Unavailable):
        await http.get_json("/x", endpoint="x")
    assert await http.get_json("/x", endpoint="x") == {}  # back: goes out without waiting for a slot
    assert attempts == 7
    assert clock.now() - start < 20  # back-off only; each refused attempt holding a slot cost 6 x 60 s


async def test_wait_for_a_whole_second_reset_keeps_a_margin() -> None:
    clock = VirtualClock()
    frees_at = clock.now() + 30.6  # the server's window frees mid-second...
    reset = str(int(frees_at))  # ...but it reports the reset in whole seconds, truncated
    seen: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(clock.now())
        if clock.now() < frees_at:
            return httpx.Response(429, headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": reset})
        return httpx.Response(200, json={})

    http = make(clock, handler, limits={"x": RateLimit(10, 60)})
    assert await http.get_json("/x", endpoint="x") == {}
    assert len(seen) == 2  # one 429, never a second one
    assert seen[1] - seen[0] < 33


async def test_remaining_zero_with_a_whole_second_reset_waits_past_it() -> None:
    clock = VirtualClock()
    frees_at = clock.now() + 20.4
    seen: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(clock.now())
        if len(seen) > 1 and clock.now() < frees_at:
            return httpx.Response(429, headers={"x-ratelimit-reset": str(int(frees_at))})
        headers = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(frees_at))}
        return httpx.Response(200, json={}, headers=headers)

    http = make(clock, handler, limits={"x": RateLimit(10, 60)})
    await http.get_json("/x", endpoint="x")
    await http.get_json("/x", endpoint="x")
    assert len(seen) == 2
    assert seen[1] >= frees_at


async def test_validation_fails_fast_naming_host_and_cause() -> None:
    clock = VirtualClock()
    attempts = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal attempts
        attempts += 1
        return _refused(request)

    http = make(clock, handler)
    with pytest.raises(Unavailable) as info:
        await http.get_json("/v2/account?key=sk-secret-123", endpoint="account", retries=0)
    assert attempts == 1
    assert clock.slept == 0
    assert "could not connect to acme.test: connection refused" in info.value.detail
    assert "sk-secret" not in info.value.detail
    assert "?" not in info.value.detail


async def test_sync_retries_refused_connections_and_names_host_and_cause() -> None:
    http = make(VirtualClock(), _refused, max_retries=2)
    expected = r"acme x unavailable after 3 attempts: could not connect to acme\.test: connection refused"
    with pytest.raises(Unavailable, match=expected):
        await http.get_json("/x", endpoint="x")


@pytest.mark.parametrize(
    ("cause", "words"),
    [
        (socket.gaierror(-2, "Name or service not known"), "host name not found"),
        (ConnectionResetError(104, "Connection reset by peer"), "connection reset"),
        (TimeoutError(), "timed out"),
    ],
)
async def test_connection_failures_say_why(cause: OSError, words: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        try:
            raise cause
        except OSError as exc:
            raise httpx.ConnectError("connect failed", request=request) from exc

    http = make(VirtualClock(), handler, base_url="https://api.example.test:8443")
    with pytest.raises(Unavailable) as info:
        await http.get_json("/x", endpoint="x", retries=0)
    assert f"could not connect to api.example.test:8443: {words}" in info.value.detail


async def test_a_clock_that_jumps_back_does_not_block_for_the_jump() -> None:
    clock = VirtualClock()
    http = make(clock, lambda r: httpx.Response(200, json={}), limits={"x": RateLimit(1, 60)})
    await http.get_json("/x", endpoint="x")
    clock._now -= 3600  # the wall clock was an hour fast, and NTP set it right
    start = clock.now()
    await http.get_json("/x", endpoint="x")
    assert clock.now() - start <= 61  # one window at most, not the hour


async def test_a_per_request_bearer_token_never_reaches_exceptions() -> None:
    """Bank links send a fresh access token per request (``bearer_request``), not one set when
    the client is made: a provider echoing it in an error body is scrubbed all the same."""
    token = "eyJ-fake-access-token-for-tests"

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(403, json={"message": f"token {token} may not read this account"})

    async def tokens(rejected: str | None) -> str:
        return token

    http = make(VirtualClock(), handler)
    with capture_logs() as logs, pytest.raises(ProviderError) as info:
        await http.bearer_request(tokens, "GET", "/accounts/1/", endpoint="x")
    assert token not in str(info.value)
    assert "***" in str(info.value)
    assert token not in repr(logs)


async def test_a_reserved_send_is_spent_by_its_request_and_never_twice() -> None:
    """``reserve`` takes a slot without waiting; the request given it sends on that slot
    (no second one); a slot given back frees its place; a spent budget reserves nothing."""
    clock = VirtualClock()
    start = clock.now()
    seen: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(clock.now() - start)
        return httpx.Response(200, json={})

    http = make(clock, handler, limits={"orders": RateLimit(2, 60), "other": RateLimit(5, 60)})
    slot = await http.reserve("orders")
    assert slot is not None
    await http.request("POST", "/o", endpoint="orders", slot=slot)
    await http.request("POST", "/o", endpoint="orders", slot=slot)  # spent: takes its own slot
    assert seen == [0.0, 0.0]  # two sends within the limit of two: the reserved slot was the first
    assert await http.reserve("orders") is None  # spent: nothing reserved, and no waiting
    assert clock.now() == start

    clock.advance(61)  # the window (and its margin) has passed
    kept = await http.reserve("orders")
    assert kept is not None
    await kept.release()
    await kept.release()  # once only: a second release gives back nothing more
    wrong = await http.reserve("other")  # another budget's slot is not spent on "orders"
    assert wrong is not None
    for _ in range(2):
        await http.request("POST", "/o", endpoint="orders", slot=wrong)
    assert seen[2:] == [61.0, 61.0]  # the released slot was free again, and only two fit
    assert await http.reserve("orders") is None
    await http.request("POST", "/o", endpoint="orders")  # a third waits its turn, as always
    assert seen[-1] >= 121.0
