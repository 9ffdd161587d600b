"""What a running app holds: settings and the resources its lifespan opened."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis
from starlette.requests import HTTPConnection

from livecommerce.auth import Authenticator
from livecommerce.broker import Broker
from livecommerce.db import Database
from livecommerce.metrics import Metrics
from livecommerce.origins import OriginPolicy
from livecommerce.settings import Settings

if TYPE_CHECKING:
    from livecommerce.hub import Hub
    from livecommerce.orders import OrderPipeline
    from livecommerce.payments import Payments
    from livecommerce.seckill import SeckillEngine


@dataclass
class AppContext:
    settings: Settings
    db: Database
    redis: Redis
    auth: Authenticator
    broker: Broker
    metrics: Metrics
    admin_token: str
    origins: OriginPolicy
    hub: Hub | None = None
    seckills: SeckillEngine | None = None
    orders: OrderPipeline | None = None
    payments: Payments | None = None
    extras: dict[str, Any] = field(default_factory=dict)


def ctx(connection: HTTPConnection) -> AppContext:
    context: AppContext = connection.app.state.lc
    return context
