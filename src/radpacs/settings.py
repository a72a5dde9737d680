"""One :class:`Settings` object, read from a settings.yml and ``RADPACS_*`` environment variables.

Precedence, highest first: explicit overrides (the command line), environment variables,
the YAML file, the defaults. Every default works on a laptop with no other service.
Build settings with :func:`load_settings`; nothing is read at import time.

Example::

    settings = load_settings(data_dir="/srv/radpacs")
    settings.resolved_database_url  # 'sqlite:////srv/radpacs/index.sqlite'
"""

from __future__ import annotations

import ipaddress
import os
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

__all__ = ["AiQueue", "DuplicatePolicy", "Settings", "load_settings"]


class DuplicatePolicy(StrEnum):
    """What STOW-RS does with a different object under an already stored SOP Instance UID."""

    REJECT = "reject"
    REPLACE = "replace"


class AiQueue(StrEnum):
    """Where AI jobs wait: a SQLite file in the data folder, or a Redis server."""

    SQLITE = "sqlite"
    REDIS = "redis"


class Settings(BaseSettings):
    """Every setting of a radpacs server. See docs/configuration.md for each one."""

    model_config = SettingsConfigDict(env_prefix="RADPACS_", extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    data_dir: Path = Path("radpacs-data")
    database_url: str | None = None
    public_base_url: str | None = None
    trust_forwarded_headers: bool = True
    trusted_proxies: list[str] = Field(default_factory=list)  # addresses, networks or names
    cors_origins: list[str] = Field(default_factory=list)
    allowed_hosts: list[str] = Field(default_factory=lambda: ["*"])
    max_upload_bytes: int = Field(default=4 * 1024**3, gt=0)
    duplicate_policy: DuplicatePolicy = DuplicatePolicy.REJECT
    qido_max_results: int = Field(default=1000, gt=0)
    metadata_cache_entries: int = Field(default=256, ge=0)
    workers: int = Field(default=1, ge=1)
    log_level: str = "info"
    deid_secret: str | None = Field(default=None, min_length=16, repr=False)
    deid_job_threshold: int = Field(default=200, ge=0)
    viewer_dir: Path | None = None  # the OHIF files; None: src/radpacs/web/ohif
    # accounts, tokens, audit (docs/auth.md)
    auth_enabled: bool = True
    open_enrolment: bool = False
    auth_secret: str | None = Field(default=None, min_length=32, repr=False)
    token_lifetime_minutes: int = Field(default=480, gt=0)
    login_max_failures: int = Field(default=5, gt=0)
    login_window_seconds: int = Field(default=300, gt=0)
    admin_user: str | None = None
    admin_password: str | None = Field(default=None, min_length=8, repr=False)
    jwt_validate: bool = False
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_jwks_url: str | None = None
    jwt_username_claim: str = "preferred_username"
    jwt_roles_claim: str = "roles"
    jwt_role_map: dict[str, str] = Field(default_factory=dict)
    log_max_bytes: int = Field(default=10 * 1024**2, gt=0)
    log_backups: int = Field(default=5, ge=0)
    # AI jobs (docs/ai.md)
    ai_queue: AiQueue = AiQueue.SQLITE
    ai_redis_url: str = "redis://127.0.0.1:6379/0"
    ai_queue_name: str = "radpacs-ai"
    ai_embedded_worker: bool = True
    ai_worker_processes: int = Field(default=1, ge=1)
    ai_job_timeout: float = Field(default=900.0, gt=0)
    ai_max_attempts: int = Field(default=3, ge=1)
    ai_retry_delay: float = Field(default=5.0, ge=0)
    ai_heartbeat_seconds: float = Field(default=1.0, gt=0)
    ai_models_dir: Path | None = None
    ai_plugins: list[str] = Field(default_factory=list)
    ai_rules: list[dict[str, Any]] = Field(default_factory=list)
    # longitudinal follow-up (docs/followup.md)
    followup_rano_bm: bool = False
    followup_volume_pr_percent: float = Field(default=-65.0, lt=0)
    followup_volume_pd_percent: float = Field(default=73.0, gt=0)
    # more background job kinds, kind -> "module:function" (docs/architecture.md, Jobs)
    job_kinds: dict[str, str] = Field(default_factory=dict)

    @field_validator("allowed_hosts")
    @classmethod
    def _check_networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            if entry != "*":
                try:
                    ipaddress.ip_network(entry, strict=False)
                except ValueError as exc:
                    raise ValueError(
                        f"allowed_hosts entry {entry!r} is not an address or CIDR"
                    ) from exc
        return value

    @field_validator("public_base_url")
    @classmethod
    def _strip_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value

    @model_validator(mode="after")
    def _check_oidc(self) -> Settings:
        if self.jwt_validate and not (self.jwt_issuer and self.jwt_audience and self.jwt_jwks_url):
            raise ValueError("jwt_validate needs jwt_issuer, jwt_audience and jwt_jwks_url")
        if bool(self.admin_user) != bool(self.admin_password):
            raise ValueError("admin_user and admin_password go together")
        return self

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file inside the data folder."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'index.sqlite').resolve()}"

    @property
    def blob_dir(self) -> Path:
        """The folder that holds the stored DICOM files."""
        return self.data_dir / "files"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        yaml_file = _config_file()
        if yaml_file is not None:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=yaml_file))
        return tuple(sources)


def _config_file() -> Path | None:
    """The YAML file named by RADPACS_CONFIG, else ./settings.yml when it exists."""
    named = os.environ.get("RADPACS_CONFIG")
    if named:
        path = Path(named)
        if not path.is_file():
            raise FileNotFoundError(f"RADPACS_CONFIG names {path}, which is not a file")
        return path
    default = Path("settings.yml")
    return default if default.is_file() else None


def load_settings(**overrides: Any) -> Settings:
    """Build the settings; ``overrides`` whose value is None are ignored."""
    given = {key: value for key, value in overrides.items() if value is not None}
    return Settings(**given)
