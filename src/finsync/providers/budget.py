"""The banks' per-account call budget (PSD2: often 4 unattended calls a day per endpoint).

Shared by the bank-link providers (GoCardless, Enable Banking): each keeps it in its
connection's state, so a sync is refused up front instead of failing half-way.

Kept in ``session.state["budget"][account_id][endpoint]`` as
``{"calls": [epoch, ...], "limit": 4, "blocked_until": epoch}`` so it survives between
syncs and processes. Our own log of successful calls is the primary source (rolling
24 h); the ``x-ratelimit-account-success-*`` headers correct it after every call.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from finsync.domain.errors import RateLimited
from finsync.providers.http import Clock

DAY = 86400.0
DEFAULT_LIMIT = 4


def rate_header(headers: Mapping[str, str], name: str) -> float | None:
    """Read ``x-ratelimit-<name>`` whichever way it is spelled (``HTTP_X_RATELIMIT_<NAME>`` too)."""
    wanted = f"x-ratelimit-{name}".lower()
    for key, value in headers.items():
        normal = key.lower().replace("_", "-").removeprefix("http-")
        if normal == wanted:
            try:
                return float(value)
            except ValueError:
                return None
    return None


class AccountBudget:
    def __init__(self, state: dict[str, Any], clock: Clock) -> None:
        self._root: dict[str, Any] = state.setdefault("budget", {})
        self._clock = clock

    def _entry(self, account_id: str, endpoint: str) -> dict[str, Any]:
        entry: dict[str, Any] = self._root.setdefault(account_id, {}).setdefault(
            endpoint, {"calls": [], "limit": DEFAULT_LIMIT, "blocked_until": 0.0}
        )
        now = self._clock.now()
        entry["calls"] = [t for t in entry["calls"] if t > now - DAY]
        return entry

    def available_at(self, account_id: str, endpoint: str) -> float:
        """Epoch when a call may succeed; ≤ now means now."""
        entry = self._entry(account_id, endpoint)
        calls = sorted(entry["calls"])
        at = float(entry.get("blocked_until") or 0.0)
        limit = int(entry.get("limit") or DEFAULT_LIMIT)
        if len(calls) >= limit:
            at = max(at, calls[len(calls) - limit] + DAY)
        return at

    def can_call(self, account_id: str, endpoint: str) -> bool:
        return self.available_at(account_id, endpoint) <= self._clock.now()

    def require(self, needs: Iterable[tuple[str, str]]) -> None:
        """Raise RateLimited, before any call, when any needed (account, endpoint) is spent."""
        now = self._clock.now()
        late = max((self.available_at(a, e) for a, e in needs), default=now)
        if late > now:
            raise RateLimited(
                "The bank's daily call allowance for this account is used up",
                retry_after=late - now,
                retry_at=datetime.fromtimestamp(late, UTC),
            )

    def record(self, account_id: str, endpoint: str, headers: Mapping[str, str]) -> None:
        """Log a successful call and adopt the server's remaining/reset view."""
        entry = self._entry(account_id, endpoint)
        now = self._clock.now()
        entry["calls"].append(now)
        limit = rate_header(headers, "account-success-limit")
        remaining = rate_header(headers, "account-success-remaining")
        reset = rate_header(headers, "account-success-reset")
        if limit is not None and limit > 0:
            entry["limit"] = int(limit)
        if remaining is None:
            return
        if remaining <= 0:
            entry["blocked_until"] = now + (reset if reset is not None else DAY)
        else:  # the bank may count by calendar day: trust its count when it is more generous
            keep = max(0, int(entry["limit"]) - int(remaining))
            entry["calls"] = sorted(entry["calls"])[-keep:] if keep else []
            entry["blocked_until"] = 0.0

    def block(self, account_id: str, endpoint: str, seconds: float) -> None:
        entry = self._entry(account_id, endpoint)
        entry["blocked_until"] = max(float(entry.get("blocked_until") or 0.0), self._clock.now() + seconds)
