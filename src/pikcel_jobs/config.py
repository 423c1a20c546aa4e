"""Settings, read from the environment and `.env` (pydantic-settings).

Every setting has a safe default for the embedded demo; `require()` names the ones a
production process cannot start without. Secrets are `SecretStr`, so they never reach
a log line or an error page by accident.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class SettingsError(RuntimeError):
    """A missing or malformed setting; the message is one line naming it."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    env: Literal["production", "demo", "test"] = "production"
    database_url: str = "sqlite+aiosqlite:///./var/pikcel.db"
    app_url: str = "http://127.0.0.1:8000"
    storage_dir: Path = Path("./var/storage")
    log_level: str = "INFO"

    pikcel_api_url: str = "http://127.0.0.1:8001"
    pikcel_api_key: SecretStr = SecretStr("")
    pikcel_webhook_secret: SecretStr = SecretStr("")

    shopify_api_key: str = ""
    shopify_api_secret: SecretStr = SecretStr("")
    # The secret before a rotation: Shopify webhooks and OAuth callbacks signed with it
    # are still accepted while it is set.
    shopify_api_secret_previous: SecretStr = SecretStr("")
    shopify_api_version: str = "2025-10"
    # When set, Shopify requests for https://{shop}/... connect here instead, keeping
    # the shop's Host header (how demo and tests reach the Shopify simulator).
    shopify_connect_url: str | None = None

    session_secret: SecretStr = SecretStr("")
    token_encryption_key: SecretStr = SecretStr("")
    # Loopback and private addresses may be fetched only when this is on (demo, tests).
    allow_private_urls: bool = False

    # Tracking engine.
    poll_initial_seconds: float = Field(2.0, gt=0)
    poll_max_seconds: float = Field(60.0, gt=0)
    job_deadline_seconds: float = Field(3600.0, gt=0)
    upstream_rps: float = Field(20.0, gt=0)
    upstream_concurrency: int = Field(10, ge=1)
    # Handlers wait on commits and the limiter too: about 3x the upstream connections keep
    # those busy (bench/tracking_capacity.py).
    worker_concurrency: int = Field(32, ge=1)
    worker_batch_size: int = Field(50, ge=1)
    lease_seconds: float = Field(60.0, gt=0)
    worker_idle_sleep_seconds: float = Field(0.5, gt=0)
    # When set, workers archive finished jobs older than this many days, once a day.
    archive_after_days: int | None = Field(None, ge=1)

    # Notifications (notifications/): email over SMTP and signed merchant webhooks.
    smtp_host: str = ""  # empty: emails are not sent (recorded as given up, replayable)
    smtp_port: int = Field(587, ge=1, le=65535)
    smtp_username: str = ""
    smtp_password: SecretStr = SecretStr("")
    smtp_starttls: bool = True  # require STARTTLS; SMTP_TLS for implicit TLS (port 465)
    smtp_tls: bool = False
    smtp_timeout_seconds: float = Field(20.0, gt=0)
    mail_from: str = "PikcelAI <notifications@localhost>"
    digest_hour_utc: int = Field(8, ge=0, le=23)
    notification_max_attempts: int = Field(8, ge=1, le=50)
    notification_backoff_seconds: float = Field(30.0, gt=0)  # doubles per failed attempt
    notification_backoff_max_seconds: float = Field(3600.0, gt=0)

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if value.startswith("sqlite:///"):
            value = value.replace("sqlite:///", "sqlite+aiosqlite:///", 1)
        elif value.startswith(("postgres://", "postgresql://")):
            value = "postgresql+psycopg://" + value.split("://", 1)[1]
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+psycopg://")):
            raise ValueError("must be a sqlite:/// or postgresql:// URL")
        return value

    @field_validator("app_url", "pikcel_api_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def require(self, *names: str) -> None:
        """Stop start-up with one clear line when a needed setting is empty."""
        for name in names:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            if not value:
                raise SettingsError(f"setting {name.upper()} is required but not set")


def load_settings(**overrides: object) -> Settings:
    """Build settings, turning a validation error into one line naming the setting."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]).upper() if first["loc"] else "settings"
        raise SettingsError(
            f"setting {name} is malformed: {str(first['msg']).removeprefix('Value error, ')}"
        ) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
