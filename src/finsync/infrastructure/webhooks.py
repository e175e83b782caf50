"""Webhook delivery over HTTP: Standard Webhooks signatures and the SSRF rules.

A target must be ``https`` and resolve only to public addresses. Loopback, private,
link-local and other non-global addresses (and plain ``http``) are allowed only for targets
in ``FINSYNC_WEBHOOK_ALLOWED_HOSTS`` (host names, IP addresses or CIDRs): a self-hoster's LAN
client. The rules are checked when a webhook is created and again at every delivery after
resolving the name, and the request goes to the address that was checked (so a DNS answer
that changes in between, "DNS rebinding", cannot redirect it). Redirects are not followed.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import ipaddress
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx

from finsync.domain.errors import InvalidInput
from finsync.domain.webhooks import SendResult

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]
MAX_URL_LENGTH = 2000
USER_AGENT = "finsync-webhooks/1"


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for ``host`` (A and AAAA)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """Standard Webhooks: ``v1,`` + base64 HMAC-SHA256 of ``{id}.{timestamp}.{body}``, keyed
    with the base64 bytes after ``whsec_``."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


@functools.cache
def _tls() -> ssl.SSLContext:
    """One TLS context per process (building one loads the CA bundle)."""
    return httpx.create_ssl_context()


# IPv6 prefixes that carry an IPv4 address in their last 32 bits: the well-known NAT64
# prefix (a NAT64 gateway connects to that IPv4 address), IPv4-compatible (``::a.b.c.d``,
# deprecated) and SIIT's IPv4-translated (``::ffff:0:a.b.c.d``) addresses.
_EMBEDDING_V4 = tuple(ipaddress.IPv6Network(n) for n in ("64:ff9b::/96", "::/96", "::ffff:0:0:0/96"))


def _public(ip: IPAddress) -> bool:
    """Globally reachable, judged by the IPv4 address an IPv6 one leads to where it embeds one
    (mapped, NAT64, 6to4, IPv4-compatible): ``::127.0.0.1`` or ``64:ff9b::a00:1`` are not
    public although Python calls them global. Reserved, multicast and (deprecated) site-local
    addresses are refused too."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return _public(ip.ipv4_mapped)
        if ip.sixtofour is not None:
            return _public(ip.sixtofour) and not ip.is_reserved
        if any(ip in net for net in _EMBEDDING_V4):
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
            return ip in _EMBEDDING_V4[0] and _public(embedded)  # only NAT64 reaches anything
        if ip.is_site_local:
            return False
    return ip.is_global and not ip.is_multicast and not ip.is_reserved


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


class TargetPolicy:
    """The allow-list: exact host names, or networks (an address is a /32 or /128)."""

    def __init__(self, allowed: Sequence[str]) -> None:
        self.networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        self.hosts: set[str] = set()
        for entry in allowed:
            try:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self.hosts.add(entry.lower().rstrip("."))

    def listed(self, host: str, addresses: Sequence[IPAddress]) -> bool:
        """Explicitly allowed: the name is listed, or every address is in a listed network."""
        if host in self.hosts:
            return True
        return bool(addresses) and all(any(ip in net for net in self.networks) for ip in addresses)

    def problem(self, scheme: str, host: str, addresses: Sequence[IPAddress]) -> str | None:
        if self.listed(host, addresses):
            return None
        if scheme != "https":
            return "webhook URLs must use https"
        for ip in addresses:
            if not _public(ip):
                return (
                    f"{host} resolves to a loopback, private or otherwise non-public address; such "
                    "targets must be listed in FINSYNC_WEBHOOK_ALLOWED_HOSTS"
                )
        return None


class HttpWebhookSender:
    """``WebhookSender`` over httpx; ``resolver`` is the DNS (tests bring one that changes) and
    ``tls`` the trust store (tests trust their own certificate authority)."""

    def __init__(
        self,
        allowed: Sequence[str],
        *,
        timeout: float = 10.0,
        resolver: Resolver = system_resolver,
        transport: httpx.AsyncBaseTransport | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self._tls = tls or _tls()
        self._policy = TargetPolicy(allowed)
        self._timeout = timeout
        self._resolve = resolver
        self._transport = transport

    @staticmethod
    def _parts(url: str) -> tuple[str, str, int]:
        if len(url) > MAX_URL_LENGTH:
            raise InvalidInput(f"url is longer than {MAX_URL_LENGTH} characters")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise InvalidInput("url is not a valid URL") from None
        scheme = parts.scheme.lower()
        if scheme not in ("https", "http"):
            raise InvalidInput("url must be an https:// URL")
        if parts.username is not None or parts.password is not None:
            raise InvalidInput("url must not contain a user name or password")
        if parts.fragment:
            raise InvalidInput("url must not contain a #fragment")
        host = (parts.hostname or "").rstrip(".")
        if not host or any(c.isspace() or ord(c) < 32 for c in url):
            raise InvalidInput("url is not a valid URL")
        if _literal(host) is None:
            try:  # an internationalised name, as DNS and the Host header carry it
                host = host.encode("idna").decode("ascii")
            except UnicodeError:
                raise InvalidInput("url has a host name that is not valid") from None
        return scheme, host, port or (443 if scheme == "https" else 80)

    async def _addresses(self, host: str, port: int) -> list[IPAddress]:
        literal = _literal(host)
        if literal is not None:
            return [literal]
        names = await asyncio.wait_for(self._resolve(host, port), timeout=self._timeout)
        return [ip for name in names if (ip := _literal(name.split("%")[0])) is not None]

    async def check_url(self, url: str) -> str:
        scheme, host, port = self._parts(url)
        literal = _literal(host)
        if literal is None and (host == "localhost" or host.endswith(".localhost")):
            addresses: list[IPAddress] = [ipaddress.ip_address("127.0.0.1")]
        else:
            try:
                addresses = await self._addresses(host, port)
            except (OSError, TimeoutError, UnicodeError):
                addresses = []  # not resolvable now: checked again at every delivery
        problem = self._policy.problem(scheme, host, addresses)
        if problem is None and scheme == "http" and not addresses and host not in self._policy.hosts:
            problem = "webhook URLs must use https"
        if problem is not None:
            raise InvalidInput(problem)
        return url

    async def send(self, url: str, secret: str, message_id: str, body: bytes) -> SendResult:
        started = time.perf_counter()

        def took() -> int:
            return int((time.perf_counter() - started) * 1000)

        try:
            scheme, host, port = self._parts(url)
        except InvalidInput as exc:
            return SendResult(None, f"refused: {exc.detail}", refused=True)
        try:
            addresses = await self._addresses(host, port)
        except (OSError, TimeoutError, UnicodeError) as exc:
            return SendResult(None, f"could not resolve {host} ({type(exc).__name__})", duration_ms=took())
        if not addresses:
            return SendResult(None, f"{host} has no address", duration_ms=took())
        problem = self._policy.problem(scheme, host, addresses)
        if problem is not None:
            return SendResult(None, f"refused: {problem}", refused=True, duration_ms=took())
        target = addresses[0]  # the checked address is the one connected to
        netloc = f"[{target}]" if target.version == 6 else str(target)
        parts = urlsplit(url)
        request_url = parts._replace(scheme=scheme, netloc=f"{netloc}:{port}").geturl()
        named = f"[{host}]" if ":" in host else host
        timestamp = int(time.time())  # wall time: receivers refuse stale or future stamps
        headers = {
            "host": named if parts.port is None else f"{named}:{parts.port}",
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature(secret, message_id, timestamp, body),
        }
        extensions: dict[str, Any] = {"sni_hostname": host} if scheme == "https" else {}
        try:
            # The timeout bounds the whole attempt (httpx's bounds each read: a receiver sending a
            # byte at a time would hold the worker for ever), and only the answer's status is
            # waited for: its body, however large or endless, is never read.
            async with (
                asyncio.timeout(self._timeout),
                httpx.AsyncClient(
                    timeout=self._timeout,
                    follow_redirects=False,
                    verify=self._tls,
                    transport=self._transport,
                    trust_env=False,  # never through a proxy: the checked address is the one used
                ) as client,
                client.stream(
                    "POST", request_url, content=body, headers=headers, extensions=extensions
                ) as response,
            ):
                status_code = response.status_code
        except httpx.HTTPError as exc:
            return SendResult(None, f"{type(exc).__name__}: no answer from {host}", duration_ms=took())
        except TimeoutError:
            return SendResult(None, f"no answer from {host} within {self._timeout:g} s", duration_ms=took())
        except Exception as exc:  # anything else is this attempt's failure too, recorded like one
            return SendResult(None, f"{type(exc).__name__} while sending to {host}", duration_ms=took())
        error = None if 200 <= status_code < 300 else f"HTTP {status_code}"
        return SendResult(status_code, error, duration_ms=took())
