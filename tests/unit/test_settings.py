"""Settings come from the environment once; production refuses to run without a secret key."""

from pathlib import Path

import pytest

from app.settings import SettingsError, load_settings


def test_defaults_point_at_an_sqlite_file_under_var(tmp_path: Path) -> None:
    settings = load_settings({"VAR_DIR": str(tmp_path / "var")})
    assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path / 'var' / 'library.sqlite3'}"
    assert settings.app_env == "development" and settings.library_policy == "default"
    assert settings.smtp_port == 1025


def test_production_requires_a_secret_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("APP_ENV", "production")
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.setenv("VAR_DIR", str(tmp_path))
    with pytest.raises(SettingsError, match="SECRET_KEY is required"):
        load_settings()


def test_development_generates_and_keeps_a_secret_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("APP_ENV", "development")
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.setenv("VAR_DIR", str(tmp_path))
    first = load_settings().secret_key
    assert len(first) >= 32 and load_settings().secret_key == first
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("APP_ENV", "staging", "APP_ENV must be one of"),
        ("SMTP_PORT", "twenty-five", "SMTP_PORT must be a number"),
        ("SMTP_TLS", "maybe", "SMTP_TLS must be"),
    ],
)
def test_bad_settings_are_named(key: str, value: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings({key: value, "VAR_DIR": str(tmp_path)})
