"""Categories, rules, user fields of transactions, and transfers between your own accounts."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Response, status

from finsync.api.analytics_schemas import (
    AppliedOut,
    CategoryIn,
    CategoryOut,
    CategoryPatch,
    ConditionsIn,
    ConditionsOut,
    DetectedOut,
    RuleIn,
    RuleOut,
    RulePatch,
    TransactionOut,
    TransactionPatch,
    TransferIn,
    TransferOut,
)
from finsync.api.deps import ContainerDep, CurrentUser, PageDep, UowDep, bounded
from finsync.api.errors import responses
from finsync.api.pagination import PageOut, encode_cursor
from finsync.domain.categories import Rule, RuleConditions, TransferLink, TransferStatus, clean_tags
from finsync.domain.errors import Conflict, InvalidInput, NotFound

router = APIRouter(tags=["categories and rules"])


@router.get("/categories", response_model=list[CategoryOut])
async def list_categories(user: CurrentUser, container: ContainerDep) -> list[CategoryOut]:
    """Your category tree (a default tree is given on first use; edit it freely)."""
    return [CategoryOut.model_validate(c) for c in await container.labels.categories(user.id)]


@router.post(
    "/categories",
    response_model=CategoryOut,
    status_code=status.HTTP_201_CREATED,
    responses=responses(Conflict, NotFound, InvalidInput),
)
async def create_category(body: CategoryIn, user: CurrentUser, container: ContainerDep) -> CategoryOut:
    """Add a category, optionally under a parent."""
    category = await container.labels.create_category(user.id, body.name.strip(), body.kind, body.parent_id)
    return CategoryOut.model_validate(category)


@router.patch(
    "/categories/{category_id}",
    response_model=CategoryOut,
    responses=responses(Conflict, NotFound, InvalidInput),
)
async def update_category(
    category_id: UUID, body: CategoryPatch, user: CurrentUser, container: ContainerDep
) -> CategoryOut:
    """Rename, re-kind or move a category (send `parent_id: null` to make it top-level)."""
    changes = body.model_dump(exclude_unset=True)
    if "name" in changes and changes["name"] is not None:
        changes["name"] = changes["name"].strip()
    return CategoryOut.model_validate(await container.labels.update_category(user.id, category_id, changes))


@router.delete(
    "/categories/{category_id}", status_code=status.HTTP_204_NO_CONTENT, responses=responses(NotFound)
)
async def delete_category(category_id: UUID, user: CurrentUser, container: ContainerDep) -> Response:
    """Delete a category; its transactions become uncategorised, its children top-level."""
    await container.labels.delete_category(user.id, category_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _rule_out(rule: Rule) -> RuleOut:
    c = rule.conditions
    return RuleOut(
        id=rule.id,
        name=rule.name,
        conditions=ConditionsOut(
            description_contains=c.description_contains,
            payee_contains=c.payee_contains,
            amount_min=c.amount_min,
            amount_max=c.amount_max,
            account_id=c.account_id,
        ),
        category_id=rule.category_id,
        tags=rule.tags,
        priority=rule.priority,
        enabled=rule.enabled,
        created_at=rule.created_at,
        updated_at=rule.updated_at,
    )


def _rule(body: RuleIn, user_id: UUID, rule_id: UUID | None = None) -> Rule:
    c = body.conditions
    if c.amount_min is not None and c.amount_max is not None and c.amount_min > c.amount_max:
        raise InvalidInput("amount_min is greater than amount_max")
    try:
        tags = clean_tags(body.tags)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    rule = Rule(
        user_id=user_id,
        name=body.name.strip(),
        conditions=RuleConditions(**c.model_dump()),
        category_id=body.category_id,
        tags=tags,
        priority=body.priority,
        enabled=body.enabled,
    )
    if rule_id is not None:
        rule.id = rule_id
    return rule


@router.get("/rules", response_model=list[RuleOut])
async def list_rules(user: CurrentUser, uow: UowDep) -> list[RuleOut]:
    """Your rules, in the order they run (priority, then age)."""
    return [_rule_out(r) for r in await uow.rules.list(user.id)]


@router.post(
    "/rules",
    response_model=RuleOut,
    status_code=status.HTTP_201_CREATED,
    responses=responses(InvalidInput, NotFound),
)
async def create_rule(body: RuleIn, user: CurrentUser, container: ContainerDep) -> RuleOut:
    """Add a rule: conditions on description/payee/amount/account → category and tags.

    Rules fill in every new transaction a sync or import brings (never a field you set
    yourself); `POST /rules/{id}/apply` runs one over the transactions already stored.
    """
    return _rule_out(await container.labels.create_rule(_rule(body, user.id)))


@router.patch("/rules/{rule_id}", response_model=RuleOut, responses=responses(InvalidInput, NotFound))
async def update_rule(
    rule_id: UUID, body: RulePatch, user: CurrentUser, uow: UowDep, container: ContainerDep
) -> RuleOut:
    """Change a rule: only the fields sent (send `category_id: null` to stop setting a category)."""
    current = await uow.rules.get(rule_id, user.id)
    if current is None:
        raise NotFound("rule")
    sent = body.model_dump(exclude_unset=True)
    merged = RuleIn(
        name=sent.get("name") or current.name,
        conditions=body.conditions
        if "conditions" in sent and body.conditions is not None
        else ConditionsIn(**{f: getattr(current.conditions, f) for f in ConditionsIn.model_fields}),
        category_id=sent.get("category_id", current.category_id),
        tags=sent["tags"] if sent.get("tags") is not None else current.tags,
        priority=sent["priority"] if sent.get("priority") is not None else current.priority,
        enabled=sent["enabled"] if sent.get("enabled") is not None else current.enabled,
    )
    return _rule_out(await container.labels.update_rule(_rule(merged, user.id, rule_id)))


@router.delete("/rules/{rule_id}", status_code=status.HTTP_204_NO_CONTENT, responses=responses(NotFound))
async def delete_rule(rule_id: UUID, user: CurrentUser, container: ContainerDep) -> Response:
    """Delete a rule (what it set on transactions stays)."""
    await container.labels.delete_rule(user.id, rule_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/rules/{rule_id}/apply", response_model=AppliedOut, responses=responses(NotFound))
async def apply_rule(rule_id: UUID, user: CurrentUser, container: ContainerDep) -> AppliedOut:
    """Apply a rule to your stored transactions; says how many changed (user-set fields are kept)."""
    return AppliedOut(changed=await container.labels.apply_rule(user.id, rule_id))


@router.patch(
    "/transactions/{transaction_id}",
    response_model=TransactionOut,
    responses=responses(InvalidInput, NotFound),
)
async def update_transaction(
    transaction_id: UUID, body: TransactionPatch, user: CurrentUser, container: ContainerDep
) -> TransactionOut:
    """Set a transaction's category, tags, notes or `excluded_from_analytics`.

    These are yours: a re-sync or re-import never overwrites them, and rules never touch a
    field you set. Send `category_id: null` to clear the category.
    """
    fields = body.model_dump(exclude_unset=True)
    if "tags" in fields:
        try:
            fields["tags"] = clean_tags(fields["tags"] or [])
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
    if "notes" in fields and fields["notes"] is not None:
        fields["notes"] = fields["notes"].replace("\x00", "")
    if fields.get("excluded_from_analytics", True) is None:
        raise InvalidInput("excluded_from_analytics must be true or false")
    updated = await container.labels.update_transaction(user.id, transaction_id, fields)
    return TransactionOut.model_validate(updated, from_attributes=True)


def _transfer_out(link: TransferLink) -> TransferOut:
    return TransferOut(
        id=link.id,
        outflow_id=link.outflow_id,
        inflow_id=link.inflow_id,
        status=link.status,
        amount=link.amount,
        currency=link.currency,
        outflow_date=link.outflow_date,
        inflow_date=link.inflow_date,
        created_at=link.created_at,
    )


@router.get("/transfers", response_model=PageOut[TransferOut], tags=["transfers"])
@bounded
async def list_transfers(
    user: CurrentUser, uow: UowDep, page: PageDep, status: TransferStatus | None = None
) -> PageOut[TransferOut]:
    """Transfers between your own accounts: left out of cash flow unless rejected."""
    found = await uow.transfers.find(user.id, status, page)
    return PageOut[TransferOut](
        items=[_transfer_out(link) for link in found.items],
        next_cursor=encode_cursor(found.next_key) if found.next_key else None,
    )


@router.post(
    "/transfers",
    response_model=TransferOut,
    status_code=201,
    tags=["transfers"],
    responses=responses(InvalidInput, NotFound, Conflict),
)
async def link_transfer(body: TransferIn, user: CurrentUser, container: ContainerDep) -> TransferOut:
    """Mark two of your transactions (money out of one account, into another) as a transfer."""
    return _transfer_out(await container.labels.link(user.id, body.outflow_id, body.inflow_id))


@router.post(
    "/transfers/{transfer_id}/reject",
    response_model=TransferOut,
    tags=["transfers"],
    responses=responses(NotFound),
)
async def reject_transfer(transfer_id: UUID, user: CurrentUser, container: ContainerDep) -> TransferOut:
    """Not a transfer: both transactions count in cash flow again, and are never paired again."""
    return _transfer_out(await container.labels.set_status(user.id, transfer_id, TransferStatus.REJECTED))


@router.post(
    "/transfers/{transfer_id}/confirm",
    response_model=TransferOut,
    tags=["transfers"],
    responses=responses(NotFound, Conflict),
)
async def confirm_transfer(transfer_id: UUID, user: CurrentUser, container: ContainerDep) -> TransferOut:
    """Confirm a detected (or earlier rejected) transfer."""
    return _transfer_out(await container.labels.set_status(user.id, transfer_id, TransferStatus.CONFIRMED))


@router.post("/transfers/detect", response_model=DetectedOut, tags=["transfers"])
async def detect_transfers(user: CurrentUser, container: ContainerDep) -> DetectedOut:
    """Pair transfers across your whole history (new ones are paired on every sync and import)."""
    return DetectedOut(linked=await container.labels.detect(user.id))
