"""``/api/v1/orders``: commands (create, process) and queries (get, list, audit)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import Field

from conveyor import NotFoundError
from examples.service.accounts.keys import Authenticated
from examples.service.inputs import Body, Integer, RowId
from examples.service.repository import MAX_PAGE

from . import commands, queries

router = APIRouter(prefix="/orders", tags=["orders"])
Status = Literal["created", "processed"]
MAX_ITEMS, MAX_QUANTITY, MAX_PRICE_CENTS = 100, 10_000, 100_000_000
MAX_TOTAL_CENTS = MAX_ITEMS * MAX_QUANTITY * MAX_PRICE_CENTS


class Item(Body):
    sku: str = Field(min_length=1, max_length=64)
    quantity: Integer = Field(ge=1, le=MAX_QUANTITY)
    unitPriceCents: Integer = Field(ge=0, le=MAX_PRICE_CENTS)


class OrderIn(Body):
    reference: str = Field(min_length=1, max_length=64, description="Your own id of the order.")
    customer: str = Field(min_length=1, max_length=100)
    currency: Literal["EUR", "USD", "GBP", "CHF"]
    items: list[Item] = Field(min_length=1, max_length=MAX_ITEMS)


@router.post("", status_code=201)
async def create_order(body: OrderIn, caller: Authenticated) -> dict[str, Any]:
    """Store the order and its ``OrderCreated`` event in one transaction (409 if the
    reference is taken: nothing is written)."""
    order = await commands.create_order(
        caller.account_id,
        body.reference,
        body.customer,
        body.currency,
        [item.model_dump() for item in body.items],
    )
    return queries.view(order)


@router.post("/{order_id}/process")
async def process_order(order_id: RowId, caller: Authenticated) -> dict[str, Any]:
    """created -> processed, with its ``OrderProcessed`` event (409 if not created)."""
    return queries.view(await commands.process_order(caller.account_id, order_id))


@router.get("/{order_id}")
async def get_order(order_id: RowId, caller: Authenticated) -> dict[str, Any]:
    found = await queries.get_order(caller.account_id, order_id)
    if found is None:
        raise NotFoundError(f"no order {order_id}")
    return found


@router.get("")
async def list_orders(
    caller: Authenticated,
    status: Annotated[list[Status] | None, Query(description="Any of these.")] = None,
    not_status: Annotated[list[Status] | None, Query(alias="notStatus")] = None,
    min_total: Annotated[int | None, Query(alias="minTotalCents", ge=0, le=MAX_TOTAL_CENTS)] = None,
    max_total: Annotated[int | None, Query(alias="maxTotalCents", ge=0, le=MAX_TOTAL_CENTS)] = None,
    customer: Annotated[str | None, Query(max_length=100)] = None,
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
    size: Annotated[int, Query(ge=1, le=200)] = 20,
) -> dict[str, Any]:
    """Orders matching every filter given (statuses: any of; notStatus: none of)."""
    wanted = queries.OrderFilter(
        statuses=tuple(status or ()),
        not_statuses=tuple(not_status or ()),
        min_total_cents=min_total,
        max_total_cents=max_total,
        customer=customer or None,
    )
    return await queries.list_orders(caller.account_id, wanted, page, size)


@router.get("/{order_id}/audit")
async def order_audit(order_id: RowId, caller: Authenticated) -> list[dict[str, Any]]:
    """The audit log's rows of this order's events: one per event, however often the
    relay or the bus delivered it."""
    if await queries.get_order(caller.account_id, order_id) is None:
        raise NotFoundError(f"no order {order_id}")
    return await queries.audit_rows(order_id)
