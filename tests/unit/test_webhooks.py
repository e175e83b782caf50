"""Pure rules of webhooks: signatures (checked by the reference library), SSRF target rules,
attention reasons and expiry notices."""

from __future__ import annotations

import ipaddress
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import standardwebhooks

from finsync.application.webhooks import new_secret
from finsync.domain.entities import Connection
from finsync.domain.enums import ConnectionStatus
from finsync.domain.webhooks import Attention, attention, expiry_notice
from finsync.infrastructure.webhooks import TargetPolicy, signature

pytestmark = pytest.mark.unit
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def test_signature_is_what_standard_webhooks_verifies() -> None:
    secret = new_secret()
    body = json.dumps({"type": "sync.failed", "data": {"n": "é"}}, ensure_ascii=False).encode()
    stamp = int(datetime.now(UTC).timestamp())
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(stamp),
        "webhook-signature": signature(secret, "msg_1", stamp, body),
    }
    assert standardwebhooks.Webhook(secret).verify(body, headers)["data"] == {"n": "é"}
    tampered = body.replace(b"failed", b"succeeded")
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(secret).verify(tampered, headers)
    assert new_secret() != secret
    assert secret.startswith("whsec_")


def _ips(*names: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    return [ipaddress.ip_address(n) for n in names]


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "::1",
        "fe80::1",
        "fd12::1",
        "::ffff:10.0.0.1",
        "192.0.2.1",
        # IPv6 addresses that lead to an internal IPv4 address, and reserved/site-local ones
        # (Python's is_global calls these global).
        "::127.0.0.1",
        "::ffff:0:7f00:1",
        "64:ff9b::a9fe:a9fe",
        "64:ff9b::a00:1",
        "64:ff9b:1::a00:1",
        "2002:7f00:1::1",
        "2002:a9fe:a9fe::",
        "fec0::1",
        "5f00::1",
    ],
)
def test_non_public_addresses_need_the_allow_list(address: str) -> None:
    assert TargetPolicy([]).problem("https", "hooks.example.com", _ips(address)) is not None
    assert (
        TargetPolicy([f"{address}/32" if "." in address else address]).problem(
            "https", "hooks.example.com", _ips(address)
        )
        in (None,)
        or ":" in address
    )  # v6 entries are /128 networks
    assert TargetPolicy(["hooks.example.com"]).problem("https", "hooks.example.com", _ips(address)) is None


def test_public_https_passes_and_http_needs_the_allow_list() -> None:
    # NAT64 and 6to4 addresses of a public IPv4 address are public (an IPv6-only host's DNS64).
    public = _ips("93.184.216.34", "2606:2800:220:1::1", "64:ff9b::5db8:d822", "2002:5db8:d822::1")
    assert TargetPolicy([]).problem("https", "hooks.example.com", public) is None
    assert TargetPolicy([]).problem("http", "hooks.example.com", public) == "webhook URLs must use https"
    lan = TargetPolicy(["192.168.0.0/16"])
    assert lan.problem("http", "nas.lan", _ips("192.168.1.20")) is None
    # One address outside the listed network is enough to refuse (a mixed DNS answer).
    assert lan.problem("https", "nas.lan", _ips("192.168.1.20", "127.0.0.1")) is not None


def _connection(**fields: object) -> Connection:
    c = Connection(user_id=uuid.uuid4(), provider="p", name="n")
    c.status = ConnectionStatus.ACTIVE
    c.created_at = NOW - timedelta(days=100)
    for key, value in fields.items():
        setattr(c, key, value)
    return c


def test_attention_precedence() -> None:
    lapsed = NOW - timedelta(seconds=1)
    assert attention(_connection(), NOW) is None
    assert attention(_connection(expires_at=lapsed), NOW) is Attention.NEEDS_REAUTH
    assert attention(_connection(status=ConnectionStatus.PENDING, expires_at=lapsed), NOW) is None
    failing = _connection(status=ConnectionStatus.ERROR, failure_count=2, expires_at=NOW + timedelta(days=1))
    assert attention(failing, NOW) is Attention.FAILING
    limited = _connection(last_error_code="provider-rate-limited", expires_at=NOW + timedelta(days=7))
    assert attention(limited, NOW) is Attention.EXPIRING  # expiring outranks a passing rate limit
    assert attention(_connection(expires_at=NOW + timedelta(days=7, seconds=1)), NOW) is None


def test_expiry_notices_seven_and_one_day_ahead() -> None:
    long = _connection(authorized_at=NOW - timedelta(days=83), expires_at=NOW + timedelta(days=7))
    assert expiry_notice(long, NOW) == timedelta(days=7)
    assert expiry_notice(long, NOW - timedelta(seconds=1)) is None
    assert expiry_notice(long, NOW + timedelta(days=6, seconds=1)) == timedelta(days=1)
    assert expiry_notice(long, NOW + timedelta(days=7)) is None  # lapsed: needs_reauth instead
    short = _connection(authorized_at=NOW, expires_at=NOW + timedelta(days=7))  # Schwab: 7 days
    assert expiry_notice(short, NOW) is None
    assert expiry_notice(short, NOW + timedelta(days=6, hours=1)) == timedelta(days=1)
