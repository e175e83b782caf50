"""Domain errors. Each class carries a stable ``code``; the API maps classes, never messages."""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

MAX_RETRY_AFTER = 7 * 24 * 3600.0  # seconds: no provider limit resets later than a week


class FinsyncError(Exception):
    code = "finsync-error"
    title = "Request failed"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(FinsyncError):
    code = "not-found"
    title = "Resource not found"

    def __init__(self, resource: str) -> None:
        super().__init__(f"{resource} not found")


class Conflict(FinsyncError):
    code = "conflict"
    title = "Conflict"


class AlreadyConnected(Conflict):
    """The provider login (or account) is already connected through another of the user's connections."""

    code = "already-connected"
    title = "Already connected"

    def __init__(self, detail: str, connection_id: UUID) -> None:
        super().__init__(detail)
        self.connection_id = connection_id


class NeedsReauthorization(Conflict):
    """The provider no longer accepts this connection's authorisation: nothing to try until renewed."""

    code = "needs-reauth"
    title = "Reauthorize first"


class InvalidInput(FinsyncError):
    code = "invalid-input"
    title = "Invalid input"


class AuthenticationFailed(FinsyncError):
    code = "authentication-failed"
    title = "Authentication failed"


class WrongPassword(FinsyncError):
    """The logged-in user's current password did not match (changing it needs the old one)."""

    code = "wrong-password"
    title = "Current password is incorrect"


class TooManyAttempts(FinsyncError):
    code = "too-many-attempts"
    title = "Too many attempts"

    def __init__(self, detail: str, retry_after: float) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class RegistrationClosed(FinsyncError):
    code = "registration-closed"
    title = "Registration is closed"


class ProviderNotAvailable(FinsyncError):
    code = "provider-not-available"
    title = "Provider not available"


class ImportRejected(FinsyncError):
    code = "import-rejected"
    title = "Import rejected"


class FileTooLarge(ImportRejected):
    code = "file-too-large"
    title = "File too large"


class UnsupportedFormat(ImportRejected):
    code = "unsupported-format"
    title = "Unsupported file format"


class MalformedFile(ImportRejected):
    code = "malformed-file"
    title = "Malformed file"


class ProviderError(FinsyncError):
    """A provider call failed; messages never include credentials."""

    code = "provider-error"
    title = "Provider error"


class ProviderAuthError(ProviderError):
    """Credentials rejected or expired: the connection needs re-authorisation."""

    code = "provider-auth"
    title = "Provider rejected the credentials"


class CredentialsUnreadable(ProviderAuthError):
    """Stored credentials cannot be decrypted (lost or rotated-away key): the user must reconnect."""

    code = "credentials-unreadable"
    title = "Stored credentials cannot be decrypted"


class ConsentDenied(ProviderAuthError):
    """The provider sent the browser back without access: consent refused, or the request failed.

    ``reason`` is the provider's own word for it, as it arrived on the callback.
    """

    code = "consent-denied"
    title = "Access was not granted"

    def __init__(self, detail: str, reason: str) -> None:
        super().__init__(detail)
        self.reason = reason


class ScopeError(ProviderError):
    code = "provider-scope"
    title = "Provider credentials lack a permission"


class RateLimited(ProviderError):
    code = "provider-rate-limited"
    title = "Provider rate limit reached"

    def __init__(self, detail: str, retry_after: float, retry_at: datetime | None = None) -> None:
        super().__init__(detail)
        self.retry_after = retry_after
        self.retry_at = retry_at

    def reset_at(self, now: datetime) -> datetime:
        """When the limit resets: the provider's own instant, else ``now`` plus its wait (a
        budget that only knows how long to wait; capped at a week, a nonsense header aside)."""
        if self.retry_at is not None:
            return self.retry_at
        return now + timedelta(seconds=min(max(self.retry_after, 0.0), MAX_RETRY_AFTER))


class Unavailable(ProviderError):
    code = "provider-unavailable"
    title = "Provider unavailable"


class BadData(ProviderError):
    code = "provider-bad-data"
    title = "Provider sent data finsync cannot read"


class TradingRefused(FinsyncError):
    """An order (or trading change) the owner's switches, limits or the deployment forbid."""

    code = "trading-refused"
    title = "Trading refused"


class TradingDisabled(TradingRefused):
    code = "trading-disabled"
    title = "Trading is not enabled on this connection"


class LiveTradingDisabled(TradingRefused):
    code = "live-trading-disabled"
    title = "Live trading is disabled on this server"


class TradingHalted(TradingRefused):
    code = "trading-halted"
    title = "Trading is halted on this connection"


class OrderLimitExceeded(TradingRefused):
    code = "order-limit"
    title = "An order limit of this connection refuses the order"


class InsufficientScope(FinsyncError):
    """An API token without the scope this request needs."""

    code = "insufficient-scope"
    title = "The API token lacks the scope for this request"


class UnsupportedOrder(InvalidInput):
    """The broker cannot take this kind of order (refused before any network call)."""

    code = "unsupported-order"
    title = "The broker does not support this order"


class BrokerOrderNotFound(ProviderError):
    """The broker does not know this order (HTTP 404 on an order path)."""

    code = "broker-order-not-found"
    title = "The broker does not know this order"
