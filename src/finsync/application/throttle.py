"""Failed-login throttle that an attacker cannot turn against the account's owner.

Three counters per attempt, kept in the database so every API process shares them:

* the client (its IP; an IPv6 client's /64): ``per_client`` failures in a window, then 429
  until the window ends;
* the account from that client: ``per_pair`` failures in a window, then 429 for that pair;
* the account from everywhere: after ``backoff_after`` failures, clients that never logged in
  to the account wait 1, 2, 4 … seconds (at most ``backoff_max``) after the latest failure.
  The account's known clients (a successful login within ``known_for``) never wait.

An attempt is counted *before* the password is checked (and forgiven when it succeeds), so
concurrent guesses cannot slip past a limit; a refused attempt writes nothing, so storage
stays bounded by what the limits allow.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from finsync.domain.entities import LoginAttempts
from finsync.domain.errors import TooManyAttempts
from finsync.domain.ports import Now, UnitOfWork

REFUSED = "too many failed logins; try again later"


@dataclass(frozen=True, slots=True, kw_only=True)
class ThrottlePolicy:
    per_pair: int = 5
    per_client: int = 20
    window: timedelta = timedelta(minutes=5)
    backoff_after: int = 10
    backoff_max: timedelta = timedelta(seconds=60)
    known_for: timedelta = timedelta(days=30)


def client_key(address: str) -> str:
    """One key per client: the IP, or the /64 of an IPv6 address (one host's usual allocation)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


@dataclass(frozen=True, slots=True)
class Keys:
    client: str
    pair: str
    account: str

    @classmethod
    def of(cls, email: str, address: str) -> Keys:
        client = client_key(address)
        return cls(*(_digest(k) for k in (f"c:{client}", f"p:{email}\x00{client}", f"a:{email}")))


def _digest(key: str) -> str:
    """Stored keys are digests: the table never holds the emails people typed."""
    return hashlib.sha256(key.encode()).hexdigest()


class LoginThrottle:
    def __init__(self, policy: ThrottlePolicy, clock: Now) -> None:
        self.policy = policy
        self._clock = clock

    async def admit(self, uow: UnitOfWork, email: str, address: str) -> None:
        """Count this attempt as a failure, or raise TooManyAttempts (the caller rolls back)."""
        now, p, keys = self._clock(), self.policy, Keys.of(email, address)
        rows = await uow.login_attempts.lock([keys.client, keys.pair, keys.account], now)
        client, pair, account = rows[keys.client], rows[keys.pair], rows[keys.account]
        for row, limit in ((client, p.per_client), (pair, p.per_pair)):
            if self._in_window(row, now) and row.failures >= limit:
                raise TooManyAttempts(REFUSED, retry_after=self._seconds(row.window_start + p.window - now))
        known = pair.succeeded_at is not None and pair.succeeded_at > now - p.known_for
        failures = account.failures if self._recent(account, now) else 0
        if not known and failures >= p.backoff_after and account.last_failure_at is not None:
            delay = min(timedelta(seconds=2 ** min(failures - p.backoff_after, 30)), p.backoff_max)
            wait = account.last_failure_at + delay - now
            if wait > timedelta(0):
                raise TooManyAttempts(REFUSED, retry_after=self._seconds(wait))
        for row in (client, pair):
            if not self._in_window(row, now):
                row.failures, row.window_start = 0, now
        if failures == 0:
            account.failures, account.window_start = 0, now
        for row in (client, pair, account):
            row.failures += 1
            row.last_failure_at = now
            row.expires_at = self._expiry(row)
        await uow.login_attempts.save([client, pair, account])

    async def succeeded(self, uow: UnitOfWork, email: str, address: str) -> None:
        """Forgive the attempt ``admit`` counted, and remember this client for the account."""
        now, keys = self._clock(), Keys.of(email, address)
        rows = await uow.login_attempts.lock([keys.client, keys.pair, keys.account], now)
        pair = rows[keys.pair]
        pair.failures, pair.succeeded_at = 0, now
        for row in (rows[keys.client], rows[keys.account]):
            row.failures = max(0, row.failures - 1)
        for row in rows.values():
            row.expires_at = self._expiry(row)
        await uow.login_attempts.save(list(rows.values()))

    def _in_window(self, row: LoginAttempts, now: datetime) -> bool:
        return row.window_start > now - self.policy.window

    def _recent(self, row: LoginAttempts, now: datetime) -> bool:
        """The account counter decays only after a quiet window: a slow, steady guesser stays slowed."""
        return row.last_failure_at is not None and row.last_failure_at > now - self.policy.window

    def _expiry(self, row: LoginAttempts) -> datetime:
        p = self.policy
        ends = [row.window_start + p.window]
        if row.last_failure_at is not None:
            ends.append(row.last_failure_at + p.window + p.backoff_max)
        if row.succeeded_at is not None:
            ends.append(row.succeeded_at + p.known_for)
        return max(ends)

    @staticmethod
    def _seconds(delta: timedelta) -> float:
        return float(max(1, math.ceil(delta.total_seconds())))
