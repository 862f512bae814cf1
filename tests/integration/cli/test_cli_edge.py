"""`werk edge run` as a process: births on start, a clean death on SIGTERM."""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
from pathlib import Path

from tests.conftest import make_settings, mqtt_client

from werk.sparkplug.codec import decode
from werk.uns.broker import EmbeddedBroker


def test_edge_run_births_and_dies_cleanly(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "broker")
    broker = EmbeddedBroker(settings, serve_public=True)
    broker.start()
    try:
        seen: queue.Queue[tuple[str, bytes]] = queue.Queue()
        watcher = mqtt_client(settings.mqtt_port)
        watcher.on_message = lambda _c, _u, msg: seen.put((msg.topic, bytes(msg.payload)))
        watcher.subscribe("spBv1.0/#", qos=1)
        config = tmp_path / "edge.toml"
        config.write_text(
            f'[node]\ngroup = "acme"\nedge_node = "gw-cli"\n'
            f'broker = "mqtt://127.0.0.1:{settings.mqtt_port}"\n'
            f'[buffer]\npath = "{tmp_path / "buffer"}"\nfsync = false\n'
        )
        command = [sys.executable, "-m", "werk.cli.main", "edge", "run", "--config", str(config)]
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as agent:
            topic, payload = seen.get(timeout=30)
            assert topic == "spBv1.0/acme/NBIRTH/gw-cli"
            bd_seq = next(m.value for m in decode(payload).metrics if m.name == "bdSeq")
            agent.send_signal(signal.SIGTERM)
            _out, err = agent.communicate(timeout=30)
            assert agent.returncode == 0, err
        kinds = []
        while not kinds or kinds[-1] != "NDEATH":
            topic, payload = seen.get(timeout=10)
            kinds.append(topic.split("/")[2])
        death = decode(payload)
        assert next(m.value for m in death.metrics if m.name == "bdSeq") == bd_seq
        watcher.disconnect()
        watcher.loop_stop()
    finally:
        broker.stop()
