"""Settings read once from the environment; nothing happens at import time."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

ENVIRONMENTS = ("development", "test", "production")


class SettingsError(RuntimeError):
    """A setting is missing or malformed; the message says which and how to fix it."""


@dataclass(frozen=True)
class Settings:
    app_env: str
    database_url: str
    redis_url: str
    redis_namespace: str
    smtp_host: str
    smtp_port: int
    smtp_user: str | None
    smtp_password: str | None
    smtp_tls: str  # "none" | "starttls" | "tls"
    mail_from: str
    secret_key: str
    library_policy: str
    var_dir: Path
    base_url: str
    db_lock_timeout: float = 10.0  # seconds a write waits for a lock before the request gets a 503

    @property
    def production(self) -> bool:
        return self.app_env == "production"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def _secret_key(env: str, var_dir: Path) -> str:
    key = os.environ.get("SECRET_KEY", "")
    if key:
        if len(key) < 32:
            raise SettingsError("SECRET_KEY must be at least 32 characters long.")
        return key
    if env == "production":
        raise SettingsError("SECRET_KEY is required when APP_ENV=production (32+ random characters).")
    # Development and tests: generate one and keep it, so sessions survive a restart.
    path = var_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    var_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    path.write_text(key)
    path.chmod(0o600)
    return key


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Read every setting from the environment (or the mapping given)."""
    env_map = os.environ if environ is None else environ
    app_env = env_map.get("APP_ENV", "development")
    if app_env not in ENVIRONMENTS:
        raise SettingsError(f"APP_ENV must be one of {', '.join(ENVIRONMENTS)}, not {app_env!r}.")
    var_dir = Path(env_map.get("VAR_DIR", "var")).resolve()
    database_url = env_map.get("DATABASE_URL") or f"sqlite+aiosqlite:///{var_dir / 'library.sqlite3'}"
    if database_url.startswith("sqlite") and "///" in database_url:
        Path(database_url.split("///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
    try:
        smtp_port = int(env_map.get("SMTP_PORT", "1025"))
    except ValueError as exc:
        raise SettingsError("SMTP_PORT must be a number.") from exc
    try:
        db_lock_timeout = float(env_map.get("DB_LOCK_TIMEOUT", "10"))
    except ValueError as exc:
        raise SettingsError("DB_LOCK_TIMEOUT must be a number of seconds, such as 10.") from exc
    if not 0 < db_lock_timeout <= 600:
        raise SettingsError("DB_LOCK_TIMEOUT must be more than 0 and at most 600 seconds.")
    smtp_tls = env_map.get("SMTP_TLS", "none")
    if smtp_tls not in ("none", "starttls", "tls"):
        raise SettingsError("SMTP_TLS must be none, starttls or tls.")
    if environ is None:
        secret = _secret_key(app_env, var_dir)
    else:
        secret = env_map.get("SECRET_KEY") or secrets.token_urlsafe(48)
    return Settings(
        app_env=app_env,
        database_url=database_url,
        redis_url=env_map.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        redis_namespace=env_map.get("REDIS_NAMESPACE", "mylibrary"),
        smtp_host=env_map.get("SMTP_HOST", "127.0.0.1"),
        smtp_port=smtp_port,
        smtp_user=env_map.get("SMTP_USER") or None,
        smtp_password=env_map.get("SMTP_PASSWORD") or None,
        smtp_tls=smtp_tls,
        mail_from=env_map.get("MAIL_FROM", "library@example.jp"),
        secret_key=secret,
        library_policy=env_map.get("LIBRARY_POLICY", "default"),
        var_dir=var_dir,
        base_url=env_map.get("BASE_URL", "http://127.0.0.1:8000"),
        db_lock_timeout=db_lock_timeout,
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read on first use."""
    return load_settings()
