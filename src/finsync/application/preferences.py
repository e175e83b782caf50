"""A user's analytics preferences: the base currency totals are given in."""

from __future__ import annotations

from datetime import date
from uuid import UUID

from finsync.domain.entities import User
from finsync.domain.errors import InvalidInput, NotFound
from finsync.domain.market import ECB_CURRENCIES
from finsync.domain.ports import UnitOfWork, UnitOfWorkFactory


async def check_currency(uow: UnitOfWork, currency: str) -> str:
    """A currency totals can be converted into: one the ECB fixes, or one a source stored."""
    code = currency.strip().upper()
    if code in ECB_CURRENCIES:
        return code
    known = {c for c, _, _ in await uow.market.fixings(date.max, None, {code})}
    if code not in known:
        raise InvalidInput(
            f"{currency!r} is not a currency finsync has exchange rates for; use one of "
            + ", ".join(sorted(ECB_CURRENCIES))
        )
    return code


async def set_base_currency(uow_factory: UnitOfWorkFactory, user_id: UUID, currency: str) -> User:
    async with uow_factory() as uow:
        code = await check_currency(uow, currency)
        await uow.users.set_base_currency(user_id, code)
        await uow.commit()
        user = await uow.users.get(user_id)
    if user is None:
        raise NotFound("user")
    return user
