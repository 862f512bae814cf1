"""The one settings object, read from `WERK_*` environment variables and `werk.toml`."""

from __future__ import annotations

import os
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

_MIB = 1024 * 1024


class OverflowPolicy(StrEnum):
    """What the ingest queue does when it is full.

    `block` stops reading from the broker (back-pressure; the broker holds the messages).
    `quarantine` acknowledges the message and keeps it in quarantine with reason
    `queue_overflow`, so nothing is lost but the live path is protected.
    """

    BLOCK = "block"
    QUARANTINE = "quarantine"


class SparkplugRoute(BaseModel):
    """Where the metrics of matching Sparkplug devices live in the ISA-95 namespace.

    `group`, `edge_node` and `device` are shell-style patterns (``*`` matches anything);
    node-level metrics match with device ``node``. `path` is the ISA-95 node path, with
    ``{group}``, ``{edge_node}`` and ``{device}`` replaced by the ids of the message.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    group: str = "*"
    edge_node: str = "*"
    device: str = "*"
    path: str

    @field_validator("path")
    @classmethod
    def _five_levels(cls, path: str) -> str:
        levels = [p for p in path.strip("/").split("/") if p]
        if len(levels) < 5:
            raise ValueError(
                "path needs the five ISA-95 levels enterprise/site/area/line/cell, "
                f"got {len(levels)} in {path!r}"
            )
        return path


class RetentionRule(BaseModel):
    """How long one table keeps the rows of a namespace subtree."""

    model_config = ConfigDict(extra="forbid")

    table: Literal["raw", "processed", "rollups", "kpis", "records"]
    subtree: str = Field(
        default="#",
        description="MQTT-style filter over tag paths, KPI names or dataset names",
    )
    keep: str = Field(pattern=r"^\d+(\.\d+)?(ms|s|m|h|d)$", description="age kept, e.g. 30d")
    compact_after: str | None = Field(
        default=None,
        pattern=r"^\d+(\.\d+)?(ms|s|m|h|d)$",
        description="compact rows older than this age (sorted rewrite)",
    )


DEFAULT_SPARKPLUG_ROUTE: Final = SparkplugRoute(
    path="{group}/{edge_node}/sparkplug/devices/{device}"
)


class Settings(BaseSettings):
    """Every setting werk reads; see docs/configuration.md."""

    model_config = SettingsConfigDict(
        env_prefix="WERK_", env_nested_delimiter="__", extra="ignore", toml_file="werk.toml"
    )

    data_dir: Path = Path(".werk")
    broker_url: str | None = Field(
        default=None,
        description="External broker as mqtt://host:port; None starts the embedded one",
    )
    mqtt_host: str = "127.0.0.1"
    mqtt_port: Annotated[int, Field(ge=1, le=65535)] = 1883
    mqtt5_port: Annotated[int, Field(ge=1, le=65535)] = 1884
    mqtt_max_payload: Annotated[int, Field(ge=1024)] = 4 * _MIB
    mqtt_max_inflight: Annotated[int, Field(ge=1, le=65535)] = 4096
    uns_root: str = "uns/v1"
    http_host: str = "127.0.0.1"
    http_port: Annotated[int, Field(ge=1, le=65535)] = 8000
    ingest_max_payload: Annotated[int, Field(ge=64)] = _MIB
    ingest_queue_size: Annotated[int, Field(ge=1)] = 200_000
    ingest_overflow: OverflowPolicy = OverflowPolicy.BLOCK
    ingest_batch_size: Annotated[int, Field(ge=1)] = 20_000
    ingest_linger_ms: Annotated[int, Field(ge=0)] = 20
    ingest_shared_group: str = "werk"
    ingest_client_id: str | None = Field(
        default=None,
        description="stable MQTT client id of this ingest worker (persistent session); "
        "default werk-ingest-<host>",
    )
    ingest_dedupe_window_s: Annotated[int, Field(ge=0)] = 900
    ingest_spool_max_bytes: Annotated[int, Field(ge=_MIB)] = 256 * _MIB
    ingest_spool_segment_bytes: Annotated[int, Field(ge=64 * 1024)] = 64 * _MIB
    ingest_spool_fsync: bool = True
    registry_flush_s: Annotated[float, Field(gt=0)] = 2.0
    database_url: str | None = None
    historian_path: Path | None = None
    historian_url: str | None = Field(
        default=None,
        description="historian backend: duckdb:///path/file.duckdb or "
        "postgresql://user:password@host:port/db; default the DuckDB file in data_dir",
    )
    refine_interval_ms: Annotated[int, Field(ge=10)] = 200
    refine_batch_rows: Annotated[int, Field(ge=1000)] = 200_000
    retention: list[RetentionRule] = Field(
        default_factory=list, description="retention and compaction per table and subtree"
    )
    retention_interval_s: Annotated[float, Field(gt=0)] = 3600.0
    sources_file: Path | None = Field(
        default=None,
        description="TOML file of business data sources and dataset contracts (see docs)",
    )
    quality_rules_file: Path | None = Field(
        default=None, description="TOML file of quality rules loaded at start (see docs)"
    )
    log_level: str = "INFO"
    sparkplug_enabled: bool = True
    sparkplug_host_id: Annotated[str, Field(pattern=r"^[^/+#]+$")] = "werk"
    sparkplug_reorder_timeout_ms: Annotated[int, Field(ge=0)] = 2000
    sparkplug_rebirth_throttle_s: Annotated[float, Field(ge=0)] = 5.0
    sparkplug_max_payload: Annotated[int, Field(ge=1024)] = 4 * _MIB
    sparkplug_routes: list[SparkplugRoute] = Field(
        default_factory=list,
        description="Sparkplug group/edge node/device to ISA-95 path; first match wins, "
        "then the default route",
    )
    command_timeout_s: Annotated[float, Field(gt=0)] = 10.0
    demo_opcua_port: Annotated[int, Field(ge=1, le=65535)] = 4840
    demo_modbus_port: Annotated[int, Field(ge=1, le=65535)] = 5020
    mqtt_allow_anonymous: bool = Field(
        default=False,
        description="let MQTT clients without credentials publish and subscribe everywhere "
        "but $SYS (closed lab networks only)",
    )
    mqtt_internal_port: Annotated[int, Field(ge=0, le=65535)] = Field(
        default=0,
        description="loopback port of the embedded broker's MQTT 3.1.1 listener; 0 = any free",
    )
    mqtt5_internal_port: Annotated[int, Field(ge=0, le=65535)] = Field(
        default=0,
        description="loopback port of the embedded broker's MQTT 5 listener; 0 = any free",
    )
    token_issuer: str = "werk"
    access_token_ttl_s: Annotated[int, Field(ge=30, le=86_400)] = 900
    refresh_token_idle_s: Annotated[int, Field(ge=60)] = 8 * 3600
    refresh_token_max_s: Annotated[int, Field(ge=60)] = 30 * 86_400
    session_idle_s: Annotated[int, Field(ge=60)] = 8 * 3600
    session_max_s: Annotated[int, Field(ge=60)] = 7 * 86_400
    iam_sync_interval_s: Annotated[float, Field(gt=0, le=60)] = Field(
        default=1.0,
        description="how often werk applies IAM changes (revocations, disabled principals) "
        "made by other werk processes on the same database",
    )
    login_max_failures: Annotated[int, Field(ge=1)] = 5
    login_window_s: Annotated[int, Field(ge=1)] = 900
    login_lockout_s: Annotated[int, Field(ge=1)] = 60
    mosquitto_password_file: Path | None = Field(
        default=None, description="password file werk writes for an external Mosquitto"
    )
    mosquitto_acl_file: Path | None = Field(
        default=None, description="ACL file werk writes for an external Mosquitto"
    )
    mosquitto_pid_file: Path | None = Field(
        default=None, description="Mosquitto's pid file; werk sends SIGHUP to reload"
    )
    mosquitto_reload_command: str | None = Field(
        default=None, description="command that reloads Mosquitto, instead of the pid file"
    )
    oidc_issuer: str | None = Field(
        default=None, description="OpenID Connect provider (issuer URL) for web login"
    )
    oidc_client_id: str | None = None
    oidc_client_secret: SecretStr | None = None
    oidc_org: str = Field(default="operator", description="organisation of OIDC users")
    oidc_role: str = Field(default="viewer", description="role given to new OIDC users")
    oidc_namespace: list[str] = Field(
        default_factory=lambda: ["#"], description="namespace scope of new OIDC users' role"
    )
    oidc_label: str = "Single sign-on"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_path = Path(os.environ.get("WERK_CONFIG", "werk.toml"))
        toml = TomlConfigSettingsSource(settings_cls, toml_file=toml_path)
        return (init_settings, env_settings, toml)

    @property
    def relational_url(self) -> str:
        """SQLAlchemy URL of the relational store (SQLite in the data directory by default)."""
        return self.database_url or f"sqlite:///{self.data_dir / 'werk.db'}"

    @property
    def historian_file(self) -> Path:
        """DuckDB file of the historian."""
        return self.historian_path or self.data_dir / "historian.duckdb"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings, read once on first use."""
    return Settings()
