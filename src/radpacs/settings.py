"""One :class:`Settings` object, read from a settings.yml and ``RADPACS_*`` environment variables.

Precedence, highest first: explicit overrides (the command line), environment variables,
the YAML file, the defaults. Every default works on a laptop with no other service. The YAML
file is radpacs's flat mapping, or Sphere DicomWeb's nested ``api:`` layout (seed 001,
:func:`read_settings_file`).
Build settings with :func:`load_settings`; nothing is read at import time.

Example::

    settings = load_settings(data_dir="/srv/radpacs")
    settings.resolved_database_url  # 'sqlite:////srv/radpacs/index.sqlite'
"""

from __future__ import annotations

import ipaddress
import os
import re
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

__all__ = [
    "AiQueue",
    "BlobBackend",
    "DimseNode",
    "DimsePermission",
    "DuplicatePolicy",
    "S3Addressing",
    "Settings",
    "load_settings",
    "read_settings_file",
]


class DuplicatePolicy(StrEnum):
    """What STOW-RS does with a different object under an already stored SOP Instance UID."""

    REJECT = "reject"
    REPLACE = "replace"


class AiQueue(StrEnum):
    """Where AI jobs wait: a SQLite file in the data folder, or a Redis server."""

    SQLITE = "sqlite"
    REDIS = "redis"


class BlobBackend(StrEnum):
    """Where the DICOM files live: a folder in the data folder, or an S3-compatible bucket."""

    FOLDER = "folder"
    S3 = "s3"


class S3Addressing(StrEnum):
    """How the bucket is named in request URLs: ``endpoint/bucket/key`` (path, what most
    self-hosted servers need), ``bucket.endpoint/key`` (virtual), or botocore's choice."""

    PATH = "path"
    VIRTUAL = "virtual"
    AUTO = "auto"


class DimsePermission(StrEnum):
    """What a remote DICOM node may ask of radpacs (Orthanc's AllowEcho, AllowStore, ...)."""

    ECHO = "echo"
    STORE = "store"
    FIND = "find"
    MOVE = "move"
    GET = "get"


_AE_TITLE = r"^[\x21-\x5b\x5d-\x7e]([\x20-\x5b\x5d-\x7e]{0,14}[\x21-\x5b\x5d-\x7e])?$"


class DimseNode(BaseModel):
    """A remote DICOM node, as in Orthanc's DicomModalities (docs/dimse.md).

    ``host`` is where radpacs connects for C-MOVE, a send or a query, and, when
    ``check_host`` is true, the only address this AE title may call from.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    ae_title: str = Field(pattern=_AE_TITLE)
    host: str
    port: int = Field(ge=1, le=65535)
    permissions: frozenset[DimsePermission] = frozenset(DimsePermission)
    check_host: bool = True


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
    # where the DICOM files live (docs/configuration.md, Storage; docs/deploy.md)
    blob_backend: BlobBackend = BlobBackend.FOLDER
    s3_endpoint_url: str | None = None  # None: AWS S3 itself
    s3_bucket: str | None = None
    s3_prefix: str = ""  # keys are stored as prefix + key, e.g. "radpacs/"
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = Field(default=None, repr=False)
    s3_secret_access_key: str | None = Field(default=None, repr=False)
    s3_addressing: S3Addressing = S3Addressing.PATH
    s3_max_connections: int = Field(default=32, ge=1)
    s3_timeout: float = Field(default=30.0, gt=0)
    s3_read_ahead: int = Field(default=8, ge=0)  # objects a WADO retrieve GETs ahead
    s3_read_ahead_mb: int = Field(default=64, ge=1)  # at most this much of them in memory
    qido_max_results: int = Field(default=1000, gt=0)
    metadata_cache_entries: int = Field(default=256, ge=0)
    workers: int | None = Field(default=None, ge=1)  # None: see resolved_workers
    keep_alive_timeout: int = Field(default=75, ge=1)  # idle s before a connection closes
    # state shared by several API processes and machines (docs/deploy.md); None: in-process
    redis_url: str | None = None
    api_enabled: bool = True  # the REST API under /api (health, login and sessions stay)
    dicomweb_enabled: bool = True  # DICOMweb under /dicom-web
    log_level: str = "info"
    deid_secret: str | None = Field(default=None, min_length=16, repr=False)
    deid_job_threshold: int = Field(default=200, ge=0)
    viewer_dir: Path | None = None  # the OHIF files; None: src/radpacs/web/ohif
    # accounts, tokens, audit (docs/auth.md)
    auth_enabled: bool = True
    open_enrolment: bool = False
    workshop: bool = False  # the workshop preset: compute routes without a token (docs/auth.md)
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
    log_backups: int = Field(default=20, ge=0)
    log_dir: Path | None = None  # None: data_dir/logs
    log_config: Path | None = None  # a logging.config.dictConfig file (YAML) replacing ours
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
    # torchxrayvision plugin (docs/ai.md): folder holding the weight files, never downloaded
    xrv_weights_dir: Path | None = None
    xrv_weights: list[str] = Field(default_factory=lambda: ["densenet121-res224-all"])
    xrv_threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    # MONAI plugin (docs/ai.md): one *.json manifest per model (network, checkpoint, inputs)
    monai_models_dir: Path | None = None
    # DICOM networking, DIMSE (docs/dimse.md)
    dimse_enabled: bool = True
    dimse_ae_title: str = Field(default="RADPACS", pattern=_AE_TITLE)
    dimse_host: str | None = None  # None: the same address as `host`
    dimse_port: int = Field(default=11112, ge=1, le=65535)
    dimse_nodes: dict[str, DimseNode] = Field(default_factory=dict)
    dimse_allow_unknown: bool = False
    dimse_check_called_ae: bool = True
    dimse_max_associations: int = Field(default=16, ge=1)
    dimse_timeout: float = Field(default=30.0, gt=0)
    # callback apps (docs/ai-apps.md, "Callback apps"): hosts an app URL may name (names,
    # addresses or networks; empty: loopback only) and the lifetime of an app's token
    apps_allowed_hosts: list[str] = Field(default_factory=list)
    apps_token_minutes: int = Field(default=60, gt=0, le=24 * 60)
    # more background job kinds, kind -> "module:function" (docs/architecture.md, Jobs)
    job_kinds: dict[str, str] = Field(default_factory=dict)

    @field_validator("apps_allowed_hosts")
    @classmethod
    def _check_app_hosts(cls, value: list[str]) -> list[str]:
        for entry in value:
            name = entry.strip().lower()
            if name == "*" or "://" in name or not re.fullmatch(r"[a-z0-9.:_/\-\[\]]+", name):
                raise ValueError(
                    f"apps_allowed_hosts entry {entry!r} is not a host name, address or CIDR "
                    "(no wildcard: name each host an app may be at)"
                )
        return [entry.strip().lower() for entry in value]

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
        titles = [node.ae_title for node in self.dimse_nodes.values()]
        repeated = sorted({title for title in titles if titles.count(title) > 1})
        if repeated:
            raise ValueError(f"dimse_nodes: AE title {repeated[0]!r} is given to several nodes")
        if self.blob_backend is BlobBackend.S3 and not self.s3_bucket:
            raise ValueError("blob_backend s3 needs s3_bucket")
        if bool(self.s3_access_key_id) != bool(self.s3_secret_access_key):
            raise ValueError("s3_access_key_id and s3_secret_access_key go together")
        return self

    @property
    def dimse_listen_host(self) -> str:
        """The address the DIMSE server listens on: ``dimse_host``, else ``host``."""
        return self.dimse_host or self.host

    @property
    def resolved_workers(self) -> int:
        """Server processes: ``workers``, else one per CPU core when ``redis_url`` shares
        their state, else 1 (without Redis, rate limits, UPS-RS events and the AI arrival
        rules would each live in one process; docs/decisions.md)."""
        if self.workers is not None:
            return self.workers
        return (os.cpu_count() or 1) if self.redis_url else 1

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file inside the data folder."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'index.sqlite').resolve()}"

    @property
    def resolved_log_dir(self) -> Path:
        """The folder of the log files: ``log_dir``, else ``data_dir/logs``."""
        return self.log_dir if self.log_dir is not None else self.data_dir / "logs"

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
            sources.append(InitSettingsSource(settings_cls, read_settings_file(yaml_file)))
        return tuple(sources)


#: Sphere DicomWeb's settings.yml (seed 001): ``api:`` and ``api.dicomweb:`` keys, and the
#: radpacs settings they stand for.
_SPHERE_API = {
    "start": "api_enabled",
    "ip": "host",
    "port": "port",
    "allowed_hosts": "allowed_hosts",
}
_SPHERE_DICOMWEB = {"start": "dicomweb_enabled", "jwt_validate": "jwt_validate"}


def read_settings_file(path: Path) -> dict[str, Any]:
    """The settings a YAML file holds, in radpacs's flat layout or Sphere DicomWeb's::

        api:
            start: true          # api_enabled
            ip: 127.0.0.1        # host
            port: 5555           # port
            allowed_hosts: ['*', 127.0.0.1]
            dicomweb:
                start: true      # dicomweb_enabled
                jwt_validate: false

    Both may be mixed; a setting given twice, an unknown key under ``api:`` or a file that
    is not a mapping is a ValueError naming it.
    """
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"{path} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a mapping of settings, not {type(data).__name__}")
    api = data.pop("api", None)
    if api is None:
        return data
    if not isinstance(api, dict):
        raise ValueError(f"{path}: api must be a mapping (the Sphere DicomWeb layout)")
    dicomweb = api.pop("dicomweb", None) or {}
    if not isinstance(dicomweb, dict):
        raise ValueError(f"{path}: api.dicomweb must be a mapping")
    for prefix, section, names in (
        ("api", api, _SPHERE_API),
        ("api.dicomweb", dicomweb, _SPHERE_DICOMWEB),
    ):
        for key, value in section.items():
            target = names.get(key)
            if target is None:
                raise ValueError(
                    f"{path}: unknown key {prefix}.{key} (known: {', '.join(sorted(names))})"
                )
            if target in data:
                raise ValueError(f"{path}: {prefix}.{key} and {target} set the same setting")
            data[target] = value
    return data


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
