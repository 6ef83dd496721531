"""Console pages of deliveries: the inbox, one delivery whole, and its Replay button (the same
replay as POST /v1/deliveries/{id}/replay)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from app.api.deliveries import DELIVERIES, DeliveryIdPath
from app.api.deps import SessionDep, WatchDep, WriterDep, app_metrics
from app.api.pagination import decode_before_id, encode_before_id
from app.api.params import DeliveryParams
from app.api.schemas.deliveries import DeliveryDetailOut
from app.console.bodies import shown_off_the_loop
from app.console.guard import CheckedForm, SignedIn
from app.console.listings import in_use, page_query, read_params
from app.console.pages import ConsoleRoute, Problem, redirect, render
from app.errors import InvalidRequest
from app.ingest.intake import Outcome
from app.providers.model import Provider
from app.queries import deliveries as delivery_queries
from app.replay import replay_by_id

router = APIRouter(prefix="/ui/deliveries", route_class=ConsoleRoute, include_in_schema=False)
# Deliveries kept whatever the parsers made of them: shown so that they stand out.
STANDS_OUT = frozenset({Outcome.REJECTED, Outcome.ORPHANED, Outcome.REFUSED})


@router.get("")
async def delivery_list(request: Request, _signed_in: SignedIn, session: SessionDep) -> Response:
    params = read_params(request.query_params, DeliveryParams)
    error = params if isinstance(params, str) else None
    deliveries = []
    next_query = None
    if isinstance(params, DeliveryParams):
        try:
            page = await delivery_queries.list_deliveries(
                session,
                params.filter(),
                limit=params.limit,
                before_id=decode_before_id(DELIVERIES, params.cursor),
            )
        except InvalidRequest as invalid:
            error = invalid.message
        else:
            deliveries = page.deliveries
            next_query = page_query(
                request.query_params, encode_before_id(DELIVERIES, page.next_before_id)
            )
    return render(
        request,
        "deliveries.html",
        status=200 if error is None else 422,
        deliveries=deliveries,
        error=error,
        asked=request.query_params,
        filtered=in_use(request.query_params),
        next_query=next_query,
        providers=[provider.value for provider in Provider],
        outcomes=[outcome.value for outcome in Outcome],
        stands_out=STANDS_OUT,
    )


@router.get("/{delivery_id}")
async def delivery_page(
    request: Request, _signed_in: SignedIn, delivery_id: DeliveryIdPath, session: SessionDep
) -> Response:
    detail = await delivery_queries.find_delivery(session, delivery_id)
    if detail is None:
        raise Problem(404, f"There is no delivery {delivery_id}.")
    body = detail.delivery.body
    return render(
        request,
        "delivery.html",
        # The API's view of it: the headers it may show, never a credential (app/headers.py).
        delivery=DeliveryDetailOut.of_detail(detail),
        body=await shown_off_the_loop(body),
        stands_out=STANDS_OUT,
    )


@router.post("/{delivery_id}/replay")
async def replay(
    request: Request,
    _form: CheckedForm,
    delivery_id: DeliveryIdPath,
    session: SessionDep,
    writer: WriterDep,
    watch: WatchDep,
) -> Response:
    receipt = await replay_by_id(
        session, delivery_id, writer=writer, watch=watch, metrics=await app_metrics(request)
    )
    return redirect(request, f"/deliveries/{receipt.delivery_id}")
