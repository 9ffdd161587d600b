"""Products of a brand."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from starlette.requests import Request
from starlette.responses import Response

from livecommerce.api import ApiRoute, json_response
from livecommerce.context import ctx
from livecommerce.errors import ApiError, forbidden, invalid, not_found
from livecommerce.ids import new_id
from livecommerce.listing import keyset_page
from livecommerce.models import Product
from livecommerce.validation import Bps, Cents, Name, Sku, StrictBody, Url, parse_body
from livecommerce.views import product_view


class ProductCreate(StrictBody):
    sku: Sku
    title: Name
    price_cents: Cents
    image_url: Url | None = None
    dealer_bps: Bps
    upline_bps: Bps = 0


async def create_product(request: Request) -> Response:
    app = ctx(request)
    principal = await app.auth.require(request, "brand")
    body = await parse_body(request, ProductCreate)
    fee = app.settings.platform_fee_bps
    if body.dealer_bps + body.upline_bps + fee > 10_000:
        raise invalid(f"dealer_bps + upline_bps + the platform fee ({fee}) must not exceed 10000")
    product = Product(id=new_id(), brand_id=principal.id, **body.model_dump())
    try:
        async with app.db.write() as session:
            session.add(product)
    except IntegrityError:
        raise ApiError(409, "duplicate_sku", f"this brand already has sku {body.sku!r}") from None
    return json_response(product_view(product), 201)


async def list_products(request: Request) -> Response:
    app = ctx(request)
    principal = await app.auth.require(request, "brand")
    statement = select(Product).where(Product.brand_id == principal.id)
    async with app.db.read() as session:
        page = await keyset_page(session, request, statement, col(Product.id), product_view)
    return json_response(page)


async def get_product(request: Request) -> Response:
    app = ctx(request)
    principal = await app.auth.require(request, "brand")
    async with app.db.read() as session:
        product = await session.get(Product, request.path_params["product_id"])
    if product is None:
        raise not_found("product")
    if product.brand_id != principal.id:
        raise forbidden("another brand's product")
    return json_response(product_view(product))


routes = [
    ApiRoute("/api/products", create_product, method="POST", summary="Create a product",
             roles=["brand"], body=ProductCreate, status=201),
    ApiRoute("/api/products", list_products, method="GET", summary="List this brand's products",
             roles=["brand"], query=["limit", "cursor"]),
    ApiRoute("/api/products/{product_id}", get_product, method="GET", summary="Read a product",
             roles=["brand"]),
]  # fmt: skip
