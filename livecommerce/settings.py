"""One settings object, read once from ``LIVECOMMERCE_*`` variables and passed down."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

PREFIX = "LIVECOMMERCE_"


class SettingsError(ValueError):
    """A setting holds a value that cannot be used."""


def _bool(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _int(name: str, value: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise SettingsError(f"{PREFIX}{name} must be an integer, got {value!r}") from None
    if not low <= number <= high:
        raise SettingsError(f"{PREFIX}{name} must be between {low} and {high}, got {number}")
    return number


def _list(value: str) -> tuple[str, ...]:
    return tuple(item.strip().rstrip("/") for item in value.split(",") if item.strip())


@dataclass(frozen=True)
class Settings:
    """Every setting of a livecommerce server (design.md §6)."""

    data_dir: Path = field(default_factory=lambda: Path("./livecommerce-data"))
    redis_url: str | None = None
    database_url: str | None = None
    admin_token: str | None = None
    pay_timeout_s: int = 900
    freeze_days: int = 7
    platform_fee_bps: int = 0
    allowed_origins: tuple[str, ...] = ()
    payment_webhook_secret: str | None = None
    dev_payments: bool = False
    public_url: str | None = None
    currency: str = "CNY"
    ip_rate_limit: int = 0
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    buy_rate_per_s: int = 20
    chat_rate_per_s: int = 2
    ws_messages_per_s: int = 20
    bench_routes: bool = False  # benchmark baseline routes (/bench/...), never in production

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read settings from ``env`` (default: the process environment), then apply overrides."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}

        def get(name: str) -> str | None:
            raw = env.get(PREFIX + name)
            return raw if raw not in (None, "") else None

        if (raw := get("DATA_DIR")) is not None:
            values["data_dir"] = Path(raw)
        for name in ("REDIS_URL", "ADMIN_TOKEN", "PAYMENT_WEBHOOK_SECRET", "PUBLIC_URL", "HOST"):
            if (raw := get(name)) is not None:
                values[name.lower()] = raw.rstrip("/") if name == "PUBLIC_URL" else raw
        if env.get("DATABASE_URL"):
            values["database_url"] = env["DATABASE_URL"]
        elif (raw := get("DATABASE_URL")) is not None:
            values["database_url"] = raw
        if (raw := get("CURRENCY")) is not None:
            values["currency"] = raw.upper()
        int_ranges = {
            "PAY_TIMEOUT_S": (1, 86_400 * 30),
            "FREEZE_DAYS": (0, 3650),
            "PLATFORM_FEE_BPS": (0, 10_000),
            "PORT": (0, 65_535),
            "WORKERS": (1, 256),
            "IP_RATE_LIMIT": (0, 1_000_000),
            "BUY_RATE_PER_S": (1, 1_000_000),
            "CHAT_RATE_PER_S": (1, 1_000_000),
            "WS_MESSAGES_PER_S": (1, 1_000_000),
        }
        for name, (low, high) in int_ranges.items():
            if (raw := get(name)) is not None:
                values[name.lower()] = _int(name, raw, low, high)
        if (raw := get("ALLOWED_ORIGINS")) is not None:
            values["allowed_origins"] = _list(raw)
        if (raw := get("DEV_PAYMENTS")) is not None:
            values["dev_payments"] = _bool(raw)
        if (raw := get("BENCH_ROUTES")) is not None:
            values["bench_routes"] = _bool(raw)
        values.update({key: value for key, value in overrides.items() if value is not None})
        return cls(**values)

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    @property
    def sqlalchemy_url(self) -> str:
        """The async SQLAlchemy URL: ``DATABASE_URL`` or a SQLite file in the data dir."""
        if self.database_url:
            url = self.database_url
            for sync, async_ in (
                ("postgresql://", "postgresql+asyncpg://"),
                ("postgres://", "postgresql+asyncpg://"),
                ("sqlite:///", "sqlite+aiosqlite:///"),
            ):
                if url.startswith(sync):
                    return async_ + url[len(sync) :]
            return url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'livecommerce.db').resolve()}"

    @property
    def is_sqlite(self) -> bool:
        return self.sqlalchemy_url.startswith("sqlite")
