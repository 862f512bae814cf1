"""`werk write`, `werk commands` and `werk sparkplug ...` against a running werk."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import LiveServer, make_settings, wait_until
from tests.sparkplug_edge import D, E, EdgeNode, G

from werk.core.settings import SparkplugRoute
from werk.sparkplug.codec import Metric, PropertySet
from werk.sparkplug.datatypes import COMMAND_ID, COMMAND_STATUS, DataType

PATH = "acme/berlin/machining/line-1/cell-1/cnc-1"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    route = SparkplugRoute(group=G, edge_node=E, device=D, path=PATH)
    with LiveServer(make_settings(tmp_path, sparkplug_routes=[route])) as live:
        yield live


@pytest.fixture
def edge(server: LiveServer) -> Iterator[EdgeNode]:
    node = EdgeNode(server.settings.mqtt_port)
    node.birth(bd_seq=2)
    wait_until(lambda: _werk(server, "sparkplug", "nodes").stdout.count("online") == 1)
    yield node
    node.close()


def _werk(server: LiveServer, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "WERK_HTTP_PORT": str(server.settings.http_port),
        "WERK_API_KEY": server.key,
        "PATH": "/usr/bin:/bin",
        "COLUMNS": "250",
    }
    return subprocess.run(
        [sys.executable, "-m", "werk.cli.main", *args],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def _answer(edge: EdgeNode, status: str) -> None:
    _topic, payload = edge.next_command()
    props = payload.metrics[0].properties
    assert props is not None
    command = props.get(COMMAND_ID)
    assert command is not None
    result = PropertySet.of(
        **{COMMAND_ID: (DataType.STRING, command.value), COMMAND_STATUS: (DataType.STRING, status)}
    )
    edge.send("DDATA", (Metric(alias=2, value=1234.0, properties=result),), D)


def test_nodes_and_rebirth(server: LiveServer, edge: EdgeNode) -> None:
    listed = _werk(server, "sparkplug", "nodes")
    assert f"{G}/{E}" in listed.stdout and "online" in listed.stdout and D in listed.stdout
    asked = _werk(server, "sparkplug", "rebirth", G, E)
    assert asked.returncode == 0, asked.stderr
    assert edge.next_command()[1].metrics[0].name == "Node Control/Rebirth"
    unknown = _werk(server, "sparkplug", "rebirth", G, "nope")
    assert unknown.returncode == 1 and "no Sparkplug edge node" in unknown.stderr


def test_write_shows_the_read_back_value_and_the_log_shows_it(
    server: LiveServer, edge: EdgeNode
) -> None:
    responder = threading.Thread(target=_answer, args=(edge, "done"))
    responder.start()
    wrote = _werk(server, "write", f"{PATH}/Setpoints.Speed", "1234")
    responder.join(10)
    assert wrote.returncode == 0, wrote.stderr
    assert "done, read back 1234.0" in wrote.stdout
    log = _werk(server, "commands", "--tag", f"{PATH}/Setpoints.Speed")
    assert "Setpoints.Speed" in log.stdout and "done" in log.stdout


def test_a_failed_write_exits_non_zero(server: LiveServer, edge: EdgeNode) -> None:
    responder = threading.Thread(target=_answer, args=(edge, "failed"))
    responder.start()
    wrote = _werk(server, "write", f"{PATH}/Setpoints.Speed", "99")
    responder.join(10)
    assert wrote.returncode == 1
    assert "failed" in wrote.stdout
    refused = _werk(server, "write", f"{PATH}/Speed", "abc")
    assert refused.returncode == 1 and "does not fit" in refused.stderr
