"""accounts.iban: the account's IBAN (normalised), to find one account reached twice

Revision ID: 0012
Revises: 0011
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from finsync.domain.reach import normalise_iban
from finsync.infrastructure.db.types import JSONType

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _iban_of(provider: str, raw: Any) -> str | None:
    """Where the bank-link adapters kept the IBAN in ``raw`` before it had a column."""
    if not isinstance(raw, dict):
        return None
    inner = raw.get("details") if provider == "gocardless" else raw.get("account")
    return normalise_iban(inner.get("iban")) if isinstance(inner, dict) else None


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("iban", sa.String(34), nullable=True))
        batch.create_index("ix_accounts_user_iban", ["user_id", "iban"])
    accounts = sa.table(
        "accounts",
        sa.column("id", sa.Uuid),
        sa.column("provider", sa.String),
        sa.column("raw", JSONType),
        sa.column("iban", sa.String),
    )
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(accounts.c.id, accounts.c.provider, accounts.c.raw).where(
            accounts.c.provider.in_(("gocardless", "enablebanking"))
        )
    ).all()
    for account_id, provider, raw in rows:
        iban = _iban_of(provider, raw)
        if iban is not None:
            bind.execute(sa.update(accounts).where(accounts.c.id == account_id).values(iban=iban))


def downgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.drop_index("ix_accounts_user_iban")
        batch.drop_column("iban")
