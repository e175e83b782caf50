"""Category names unique per user whatever the case, in the database

The service refused "coffee" beside "Coffee", but only by reading the names first: two
requests at once (or a rename racing a create) both passed the check and both were written,
since the constraint compared names exactly. A unique index on (user_id, lower(name)) makes
the second one fail (409). Names that already differ only in case are renamed first ("Coffee
(2)"), the oldest keeping its name.

Revision ID: 0020
Revises: 0019
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "uq_categories_user_lower_name"
MAX_NAME = 100


def _free(name: str, taken: set[str]) -> str:
    n = 2
    while True:
        suffix = f" ({n})"
        candidate = name[: MAX_NAME - len(suffix)] + suffix
        if candidate.lower() not in taken:
            return candidate
        n += 1


def upgrade() -> None:
    bind = op.get_bind()
    categories = sa.table(
        "categories",
        sa.column("id", sa.Uuid()),
        sa.column("user_id", sa.Uuid()),
        sa.column("name", sa.String()),
        sa.column("created_at", sa.String()),
    )
    lowered = sa.func.lower(categories.c.name)
    clashing = (
        sa.select(categories.c.user_id, lowered.label("lowered"))
        .group_by(categories.c.user_id, lowered)
        .having(sa.func.count() > 1)
        .subquery()
    )
    users = sa.select(clashing.c.user_id).distinct()
    for (user_id,) in bind.execute(users).all():
        rows = bind.execute(
            sa.select(categories.c.id, categories.c.name)
            .where(categories.c.user_id == user_id)
            .order_by(categories.c.created_at, categories.c.id)
        ).all()
        taken = {name.lower() for _, name in rows}
        seen: set[str] = set()
        for category_id, name in rows:
            if name.lower() not in seen:
                seen.add(name.lower())
                continue
            new = _free(name, taken | seen)
            seen.add(new.lower())
            bind.execute(sa.update(categories).where(categories.c.id == category_id).values(name=new))
    op.create_index(INDEX, "categories", ["user_id", sa.text("lower(name)")], unique=True)


def downgrade() -> None:
    op.drop_index(INDEX, table_name="categories")
