"""/v1/deliveries: the raw inbox, one delivery whole, and replaying it through today's parsers."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from app.api.deps import (
    SessionDep,
    WatchDep,
    WriterDep,
    app_metrics,
    require_api_token,
)
from app.api.pagination import decode_before_id, encode_before_id
from app.api.params import DeliveryParams
from app.api.schemas import examples
from app.api.schemas.common import ErrorOut, Page
from app.api.schemas.deliveries import DeliveryDetailOut, DeliveryOut, ReplayOut
from app.errors import NotFound
from app.queries import deliveries as delivery_queries
from app.replay import replay_by_id

router = APIRouter(
    prefix="/v1/deliveries",
    tags=["deliveries"],
    dependencies=[Depends(require_api_token)],
    responses={401: {"model": ErrorOut}, 422: {"model": ErrorOut}},
)
DeliveryIdPath = Annotated[
    int,
    Path(ge=1, le=2**63 - 1, openapi_examples={"accepted": {"value": examples.DELIVERY["id"]}}),
]
DELIVERIES = "deliveries"


@router.get("", summary="List deliveries, newest first")
async def list_deliveries(
    params: Annotated[DeliveryParams, Query()], session: SessionDep
) -> Page[DeliveryOut]:
    page = await delivery_queries.list_deliveries(
        session,
        params.filter(),
        limit=params.limit,
        before_id=decode_before_id(DELIVERIES, params.cursor),
    )
    return Page[DeliveryOut](
        items=[DeliveryOut.of(delivery) for delivery in page.deliveries],
        next_cursor=encode_before_id(DELIVERIES, page.next_before_id),
    )


@router.get(
    "/{delivery_id}",
    summary="One delivery: metadata, headers, raw body, parse error, jobs and replays",
    responses={404: {"model": ErrorOut}},
)
async def get_delivery(delivery_id: DeliveryIdPath, session: SessionDep) -> DeliveryDetailOut:
    detail = await delivery_queries.find_delivery(session, delivery_id)
    if detail is None:
        raise NotFound(f"no delivery {delivery_id}")
    return DeliveryDetailOut.of_detail(detail)


@router.post(
    "/{delivery_id}/replay",
    summary="Run today's parsers on a stored delivery, through the live idempotent path",
    responses={404: {"model": ErrorOut}, 409: {"model": ErrorOut}, 410: {"model": ErrorOut}},
)
async def replay(
    request: Request,
    delivery_id: DeliveryIdPath,
    session: SessionDep,
    writer: WriterDep,
    watch: WatchDep,
) -> ReplayOut:
    receipt = await replay_by_id(
        session, delivery_id, writer=writer, watch=watch, metrics=await app_metrics(request)
    )
    return ReplayOut.of(receipt, replay_of=delivery_id)
