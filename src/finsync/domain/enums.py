"""Closed vocabularies of the unified model (string values are the API and DB values)."""

from enum import StrEnum


class ProviderCategory(StrEnum):
    BANK = "bank"
    BROKERAGE = "brokerage"
    CRYPTO = "crypto"
    RETIREMENT = "retirement"
    OTHER = "other"


class AuthType(StrEnum):
    OAUTH2 = "oauth2"
    API_KEY = "api_key"
    LINK = "link"
    FILE = "file"

    @property
    def in_browser(self) -> bool:
        """Connected through a browser round trip: OAuth consent or a bank link."""
        return self in (AuthType.OAUTH2, AuthType.LINK)


class Capability(StrEnum):
    ACCOUNTS = "accounts"
    BALANCES = "balances"
    HOLDINGS = "holdings"
    TRANSACTIONS = "transactions"
    TRADING = "trading"


class AccountType(StrEnum):
    CHECKING = "checking"
    SAVINGS = "savings"
    CREDIT_CARD = "credit_card"
    LOAN = "loan"
    BROKERAGE = "brokerage"
    ISA = "isa"
    RETIREMENT = "retirement"
    CRYPTO_WALLET = "crypto_wallet"
    OTHER = "other"


class TransactionType(StrEnum):
    TRADE = "trade"
    INCOME = "income"
    TRANSFER = "transfer"
    FEE = "fee"
    TAX = "tax"
    OTHER = "other"


class TransactionSubtype(StrEnum):
    BUY = "buy"
    SELL = "sell"
    DIVIDEND = "dividend"
    INTEREST = "interest"
    DEPOSIT = "deposit"
    WITHDRAWAL = "withdrawal"
    PAYMENT = "payment"
    PURCHASE = "purchase"
    REFUND = "refund"
    REINVEST = "reinvest"
    SPLIT = "split"
    TRANSFER_IN = "transfer_in"
    TRANSFER_OUT = "transfer_out"
    FEE = "fee"
    TAX = "tax"
    OTHER = "other"


class TransactionStatus(StrEnum):
    PENDING = "pending"
    SETTLED = "settled"
    CANCELLED = "cancelled"


class ConnectionStatus(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    NEEDS_REAUTH = "needs_reauth"
    ERROR = "error"
    DISABLED = "disabled"

    @property
    def reachable(self) -> bool:
        """Whether background work (scheduled syncs, the order follower) calls the provider:
        not while the connection waits for its user (new consent, re-enabling). In SQL: the
        ``SCHEDULABLE`` predicate of ``infrastructure/db/tables.py``."""
        return self in (ConnectionStatus.ACTIVE, ConnectionStatus.ERROR)


class SnapshotSource(StrEnum):
    INITIAL = "initial"
    MANUAL = "manual"
    SCHEDULED = "scheduled"
    IMPORT = "import"
    HOLDINGS = "holdings"


class SyncTrigger(StrEnum):
    INITIAL = "initial"
    MANUAL = "manual"
    SCHEDULED = "scheduled"
    IMPORT = "import"


class SyncStatus(StrEnum):
    QUEUED = "queued"  # requested; its job waits for a worker
    RUNNING = "running"  # a worker picked its job up
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class AssetType(StrEnum):
    EQUITY = "equity"
    ETF = "etf"
    FUND = "fund"
    BOND = "bond"
    OPTION = "option"
    CRYPTO = "crypto"
    CASH = "cash"
    OTHER = "other"
