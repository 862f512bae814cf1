"""Settings: defaults, werk.toml, environment, and nothing read at import time."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from werk.core.settings import OverflowPolicy, Settings, get_settings


def test_defaults_need_no_file_and_no_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    assert settings.data_dir == Path(".werk")
    assert (settings.mqtt_port, settings.mqtt5_port, settings.http_port) == (1883, 1884, 8000)
    assert settings.relational_url == "sqlite:///.werk/werk.db"
    assert settings.historian_file == Path(".werk/historian.duckdb")


def test_toml_then_environment_take_effect(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "werk.toml").write_text(
        'mqtt_port = 2883\nhttp_port = 9000\ningest_overflow = "quarantine"\n'
    )
    monkeypatch.setenv("WERK_HTTP_PORT", "9100")
    settings = Settings()
    assert settings.mqtt_port == 2883
    assert settings.http_port == 9100
    assert settings.ingest_overflow is OverflowPolicy.QUARANTINE


def test_another_config_file_can_be_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "plant.toml"
    config.write_text('uns_root = "plant/v2"\n')
    monkeypatch.setenv("WERK_CONFIG", str(config))
    assert Settings().uns_root == "plant/v2"


def test_bad_values_are_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WERK_MQTT_PORT", "70000")
    with pytest.raises(ValidationError, match="mqtt_port"):
        Settings()


def test_get_settings_reads_once() -> None:
    get_settings.cache_clear()
    assert get_settings() is get_settings()
    get_settings.cache_clear()


def test_a_sparkplug_route_needs_five_levels() -> None:
    from pydantic import ValidationError

    from werk.core.settings import SparkplugRoute

    assert SparkplugRoute(path="a/b/c/d/{device}").path == "a/b/c/d/{device}"
    with pytest.raises(ValidationError, match="five ISA-95 levels"):
        SparkplugRoute(path="a/b/{device}")
