"""edge.toml: a complete file loads; every mistake is one line that names the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from werk.cli.edge import edge_app
from werk.core.errors import ValidationFailed
from werk.edge.buffer import DropPolicy
from werk.edge.config import BufferConfig, EdgeConfig, NodeConfig, load_config
from werk.edge.connectors import ModbusConfig, OpcUaConfig

EXAMPLE = """
[node]
group = "acme"
edge_node = "berlin-gw-1"
primary_host = "werk"
broker = "mqtt://edge:s3cret@127.0.0.1:1883"
keepalive_s = 10
publish_interval_ms = 100
max_metrics_per_message = 1000

[buffer]
path = "buffer"
max_bytes = 268435456
max_age_s = 604800
drop = "drop_newest"
replay_rate = 50000
fsync = true

[[connectors]]
kind = "opcua"
name = "cnc-1"
endpoint = "opc.tcp://127.0.0.1:4840"
browse = [{ root = "ns=2;s=Machine" }]

[[connectors]]
kind = "modbus"
name = "press-1"
host = "127.0.0.1"
port = 5020

[[connectors.groups]]
name = "fast"
interval_ms = 100
tags = [{ name = "Pressure", table = "holding_register", address = 0, type = "float32" }]
"""


def _load(tmp_path: Path, text: str) -> EdgeConfig:
    path = tmp_path / "edge.toml"
    path.write_text(text)
    return load_config(path)


def _error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ValidationFailed) as caught:
        _load(tmp_path, text)
    assert caught.value.code == "bad_config"
    assert "\n" not in caught.value.message
    return caught.value.message


def test_the_complete_example_loads(tmp_path: Path) -> None:
    config = _load(tmp_path, EXAMPLE)
    assert (config.node.group, config.node.edge_node, config.node.primary_host) == (
        "acme", "berlin-gw-1", "werk",
    )  # fmt: skip
    address = config.node.broker_address
    assert (address.host, address.port, address.username, address.password) == (
        "127.0.0.1", 1883, "edge", "s3cret",
    )  # fmt: skip
    assert config.buffer.path == tmp_path / "buffer"  # relative to the file
    assert config.buffer.drop is DropPolicy.DROP_NEWEST
    opcua, modbus = config.connectors
    assert isinstance(opcua, OpcUaConfig) and opcua.name == "cnc-1"
    assert isinstance(modbus, ModbusConfig) and modbus.groups[0].tags[0].name == "Pressure"


def test_defaults_need_only_the_identity(tmp_path: Path) -> None:
    config = _load(tmp_path, '[node]\ngroup = "g"\nedge_node = "n"\n')
    assert config.node.broker == "mqtt://127.0.0.1:1883"
    assert config.node.primary_host is None
    assert (config.node.keepalive_s, config.node.publish_interval_ms) == (10, 100)
    assert config.node.max_metrics_per_message == 1000
    buffer = config.buffer
    assert (buffer.max_bytes, buffer.max_age_s, buffer.replay_rate) == (256 << 20, 604800, 50000)
    assert (buffer.drop, buffer.fsync) == (DropPolicy.DROP_OLDEST, True)
    assert buffer.path == tmp_path / ".werk-edge" / "buffer"
    assert config.connectors == []


def test_an_unknown_key_is_named(tmp_path: Path) -> None:
    text = EXAMPLE.replace("keepalive_s = 10", "keepalive_s = 10\nkeep_alive = 3")
    assert "node.keep_alive: Extra inputs are not permitted" in _error(tmp_path, text)


def test_a_bad_value_is_named(tmp_path: Path) -> None:
    text = EXAMPLE.replace('drop = "drop_newest"', 'drop = "drop_all"')
    assert "buffer.drop:" in _error(tmp_path, text)
    text = EXAMPLE.replace("keepalive_s = 10", "keepalive_s = 0")
    assert "node.keepalive_s:" in _error(tmp_path, text)


def test_a_bad_connector_is_named_by_position(tmp_path: Path) -> None:
    text = EXAMPLE.replace('endpoint = "opc.tcp://127.0.0.1:4840"', 'endpoint = "http://x"')
    assert _error(tmp_path, text).split(":")[1].strip().startswith("connectors.0")


def test_a_sparkplug_id_must_not_contain_topic_characters(tmp_path: Path) -> None:
    message = _error(tmp_path, EXAMPLE.replace('"berlin-gw-1"', '"berlin/gw-1"'))
    assert "node.edge_node: a Sparkplug id must not contain" in message


def test_connector_names_are_unique(tmp_path: Path) -> None:
    message = _error(tmp_path, EXAMPLE.replace('name = "press-1"', 'name = "cnc-1"'))
    assert "repeated: cnc-1" in message


def test_a_bad_broker_url_never_shows_the_password(tmp_path: Path) -> None:
    text = EXAMPLE.replace("@127.0.0.1:1883", "@127.0.0.1:99999")
    message = _error(tmp_path, text)
    assert "node.broker:" in message
    assert "s3cret" not in message


def test_broken_toml_and_missing_files_are_one_line(tmp_path: Path) -> None:
    assert "not valid TOML" in _error(tmp_path, "[node\n")
    with pytest.raises(ValidationFailed, match="cannot read"):
        load_config(tmp_path / "missing.toml")


def test_the_python_constructor_builds_the_same_config(tmp_path: Path) -> None:
    config = EdgeConfig(
        node=NodeConfig(group="acme", edge_node="gw", broker="mqtt://127.0.0.1:1884"),
        buffer=BufferConfig(path=tmp_path / "b", fsync=False),
    )
    assert config.node.broker_address.port == 1884
    assert config.buffer.path == tmp_path / "b"


def test_werk_edge_check_lists_devices_and_tags(tmp_path: Path) -> None:
    path = tmp_path / "edge.toml"
    path.write_text(EXAMPLE)
    result = CliRunner().invoke(edge_app, ["check", "--config", str(path)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "acme/berlin-gw-1 -> mqtt://edge@127.0.0.1:1883" in result.output
    assert "s3cret" not in result.output
    assert "press-1" in result.output and "Pressure" in result.output and "FLOAT" in result.output
    assert "browsed below ns=2;s=Machine" in result.output


def test_werk_edge_check_reports_a_bad_file_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "edge.toml"
    path.write_text(EXAMPLE.replace("keepalive_s = 10", "keepalive_s = -1"))
    result = CliRunner().invoke(edge_app, ["check", "--config", str(path)])
    assert result.exit_code == 1
    assert "node.keepalive_s" in result.output
