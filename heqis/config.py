"""Typed settings: ``heqis.toml`` < ``HEQIS_*`` environment variables < command-line flags.

The one resolver every command uses (``load_settings``). The TOML file groups keys in sections
(``[data] dir = ...``); each key maps to one flat setting ``<section>_<key>`` whose environment
variable is ``HEQIS_<SECTION>_<KEY>`` (``HEQIS_DATA_DIR``, ``HEQIS_RUNTIME_TELEMETRY_PORT``).
Secrets never live in the TOML file: the Tushare token comes from ``HEQIS_TUSHARE_TOKEN`` or a
token file that only its owner can read (0600).
"""

from __future__ import annotations

import os
import sys
from datetime import date
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from heqis.errors import HeqisError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the boards run Python 3.10
    import tomli as tomllib

CONFIG_ENV = "HEQIS_CONFIG"
DEFAULT_CONFIG = Path("heqis.toml")
DEFAULT_TOKEN_FILE = Path("~/.config/heqis/tushare_token")
SECRET_KEYS = {"tushare_token"}


class Settings(BaseSettings):
    """Every setting HEQIS reads, with its default. Later steps add their sections here."""

    model_config = SettingsConfigDict(env_prefix="HEQIS_", extra="forbid", validate_default=True)

    # [data]
    data_dir: Path = Field(Path("heqis-data"), description="where the parquet store lives")
    data_watchlist: Path | None = Field(None, description="watchlist file; default ./标的参考.txt")
    data_start: date | None = Field(None, description="first trade date to fetch")
    data_end: date | None = Field(None, description="last trade date to fetch (default: today)")

    # [tushare]
    tushare_url: str | None = Field(None, description="base URL of the Tushare Pro API (mirrors, tests)")
    tushare_token: SecretStr | None = Field(None, description="only from HEQIS_TUSHARE_TOKEN")
    tushare_token_file: Path = Field(DEFAULT_TOKEN_FILE, description="0600 file holding the token")
    tushare_calls_per_min: int = Field(400, ge=1, le=100_000)
    tushare_retries: int = Field(5, ge=0, le=50)
    tushare_timeout_s: float = Field(30.0, gt=0)
    tushare_backoff_s: float = Field(2.0, ge=0, description="first retry delay; doubles each retry")

    # [features] — training inputs; unset, the preset's value holds
    features_window: int | None = Field(None, ge=2, le=2000, description="bars per window (the preset's when unset)")
    features_flat_band: float | None = Field(None, ge=0, lt=1, description="|next-day return| below it is 'flat'")

    # [train]
    train_runs_dir: Path = Field(Path("runs"), description="where runs go when --out is not given")

    # [artifacts]
    artifacts_dir: Path = Field(Path("deploy_output"), description="the artifact set: export writes, edge reads")

    # [runtime] — the brain's and the gateway's sockets (a local fleet lays its own out from [local])
    runtime_brain_port: int = Field(5555, ge=1, le=65534, description="brain PULL port (its PUSH is +1)")
    runtime_telemetry_port: int = Field(5560, ge=1, le=65535)
    runtime_control_port: int = Field(5561, ge=1, le=65535)
    runtime_ws_port: int = Field(8765, ge=0, le=65535, description="0 turns the WebSocket off")
    runtime_bind: str = Field("127.0.0.1", description="the gateway's telemetry/control address")
    runtime_db: Path = Field(Path(".heqis/signals.sqlite"), description="the gateway's SQLite store")

    # [local] — heqis up --local
    local_base_port: int = Field(5560, ge=1, le=65500, description="telemetry, control, WebSocket, then brains")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlSectionsSource(settings_cls))


class TomlSectionsSource(PydanticBaseSettingsSource):
    """Reads ``heqis.toml`` (or ``$HEQIS_CONFIG``) and flattens ``[section] key`` to ``section_key``."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls)
        self.path = Path(os.environ.get(CONFIG_ENV, DEFAULT_CONFIG))
        self.values = self._load()

    def _load(self) -> dict[str, Any]:
        if not self.path.exists():
            if CONFIG_ENV in os.environ:
                raise HeqisError(f"{self.path}: config file not found", hint=f"fix or unset {CONFIG_ENV}")
            return {}
        try:
            doc = tomllib.loads(self.path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise HeqisError(f"{self.path}: not valid TOML: {exc}") from None
        flat: dict[str, Any] = {}
        known = set(self.settings_cls.model_fields)
        for section, body in doc.items():
            if not isinstance(body, dict):
                raise HeqisError(f"{self.path}: key '{section}' must sit inside a [section]",
                                 hint="e.g. [data] dir = \"heqis-data\"")
            for key, value in body.items():
                name = f"{section}_{key}"
                if name in SECRET_KEYS:
                    raise HeqisError(f"{self.path}: [{section}] {key} must not be stored in heqis.toml",
                                     hint="set HEQIS_TUSHARE_TOKEN or write it to a 0600 token file")
                if name not in known:
                    raise HeqisError(f"{self.path}: unknown key [{section}] {key}",
                                     hint="see README, section 'Configuration'")
                flat[name] = value
        return flat

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self.values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self.values)


def load_settings(**overrides: Any) -> Settings:
    """Build the settings; ``overrides`` are command-line flags (``None`` means 'not given')."""
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        env = f"HEQIS_{field.upper()}"
        raise HeqisError(f"setting {field} = {err.get('input')!r}: {err['msg']}",
                         hint=f"check flag, {env} or heqis.toml") from None


def read_token(settings: Settings) -> str:
    """The Tushare token from the environment or the owner-only token file; never logged."""
    if settings.tushare_token is not None and settings.tushare_token.get_secret_value().strip():
        return settings.tushare_token.get_secret_value().strip()
    path = settings.tushare_token_file.expanduser()
    if not path.exists():
        raise HeqisError("no Tushare token",
                         hint=f"set HEQIS_TUSHARE_TOKEN or write it to {path} with chmod 600")
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise HeqisError(f"{path}: token file is readable by others (mode {mode:o})",
                         hint=f"run: chmod 600 {path}")
    token = path.read_text(encoding="utf-8").strip()
    if not token:
        raise HeqisError(f"{path}: token file is empty", hint="write your Tushare Pro token into it")
    return token
