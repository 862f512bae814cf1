"""The benchmark's load generator, run in its own process: ``python -m werk.bench.publisher``.

It connects (MQTT 5, QoS 1), prepares its messages, prints ``{"ready": true}``, waits for
``go`` on stdin, publishes, waits for the broker's acks, and prints one JSON line of
figures. Modes: ``single`` and ``batch`` publish `--count` messages as fast as paho
allows; ``sparkplug`` publishes an NBIRTH, a DBIRTH and `--count` DDATA messages of
`--metrics` metrics each; ``paced`` publishes single-tag messages at `--rate` for
`--seconds`, with a probe value carrying its publish time `--probe-hz` times a second.
"""

from __future__ import annotations

import argparse
import os
import select
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any, Final

import orjson
import paho.mqtt.client as paho

from werk.bench import workload
from werk.bench.workload import PublishFigures
from werk.uns.broker import BrokerAddress
from werk.uns.mqtt import client_id, connect, disconnect, make_client

_GO_TIMEOUT_S: Final = 120.0
PASSWORD_ENV: Final = "WERK_BENCH_MQTT_PASSWORD"  # not on the command line, which others see
_TICK_S: Final = 0.005


class AckCounter:
    """Count PUBACKs from paho's network thread; let the publisher wait on them."""

    def __init__(self) -> None:
        self.acked = 0
        self._changed = threading.Condition()

    def on_publish(self, _c: paho.Client, _u: Any, _mid: int, _rc: Any, _p: Any) -> None:
        """Count one acknowledged publish."""
        with self._changed:
            self.acked += 1
            self._changed.notify_all()

    def wait_for(self, acked: int, timeout_s: float) -> bool:
        """Wait until at least `acked` publishes are acknowledged; False on timeout."""
        if self.acked >= acked:
            return True
        with self._changed:
            return self._changed.wait_for(lambda: self.acked >= acked, timeout_s)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(prog="python -m werk.bench.publisher")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True, help="the broker's MQTT 5 port")
    parser.add_argument("--root", default="uns/v1")
    parser.add_argument("--mode", choices=("single", "batch", "paced", "sparkplug"), required=True)
    parser.add_argument("--metrics", type=int, default=100, help="metrics per DDATA (sparkplug)")
    parser.add_argument("--count", type=int, default=0, help="messages (single, batch)")
    parser.add_argument("--offset", type=int, default=0, help="first message number")
    parser.add_argument("--inflight", type=int, default=4096)
    parser.add_argument("--rate", type=float, default=0.0, help="messages/s (paced)")
    parser.add_argument("--seconds", type=float, default=0.0, help="duration (paced)")
    parser.add_argument("--probe-hz", type=float, default=50.0, help="probes/s (paced)")
    parser.add_argument("--timeout", type=float, default=300.0, help="wait for acks at most")
    parser.add_argument(
        "--username", default=None, help=f"MQTT user; its password comes from {PASSWORD_ENV}"
    )
    return parser.parse_args(argv)


def flood_messages(args: argparse.Namespace) -> list[tuple[str, bytes]]:
    """Every message of a flood run, built before the clock starts."""
    ts_ms = time.time_ns() // 1_000_000
    numbers = range(args.offset, args.offset + args.count)
    if args.mode == "sparkplug":
        return workload.sparkplug_messages(args.metrics, args.count, ts_ms)
    if args.mode == "batch":
        return [
            (workload.batch_topic(args.root, i), workload.batch_payload(i, ts_ms)) for i in numbers
        ]
    return [(workload.value_topic(args.root, i), workload.value_payload(i, ts_ms)) for i in numbers]


class Sender:
    """Publish at QoS 1 with at most `window` messages unacknowledged.

    paho's own in-flight limit rescans every queued message on each PUBACK, which makes a
    deep queue quadratic; so paho gets no limit and this window keeps within the broker's.
    """

    def __init__(self, client: paho.Client, acks: AckCounter, args: argparse.Namespace) -> None:
        self.figures = PublishFigures(args.mode)
        self._client = client
        self._acks = acks
        self._window = args.inflight
        self._timeout_s = args.timeout
        self._started = (time.perf_counter(), time.process_time())

    def start(self) -> None:
        """Start the wall and CPU clocks."""
        self._started = (time.perf_counter(), time.process_time())

    def send(self, topic: str, payload: bytes) -> bool:
        """Publish one message once the window allows; False if it never did in time."""
        figures = self.figures
        if figures.published - self._acks.acked >= self._window and not self._acks.wait_for(
            figures.published - self._window + 1, self._timeout_s
        ):
            figures.failed += 1
            return False
        if self._client.publish(topic, payload, qos=1).rc != paho.MQTT_ERR_SUCCESS:
            figures.failed += 1
            return False
        figures.published += 1
        return True

    def finish(self) -> PublishFigures:
        """Wait for the outstanding acks; note how long it all took and the CPU it used."""
        figures = self.figures
        acked = self._acks.wait_for(figures.published, self._timeout_s)
        figures.complete = acked and not figures.failed
        figures.acked = self._acks.acked
        figures.seconds = time.perf_counter() - self._started[0]
        figures.cpu_seconds = time.process_time() - self._started[1]
        return figures


def flood(sender: Sender, messages: list[tuple[str, bytes]]) -> None:
    """Publish every message as fast as the window allows; give up at the first failure."""
    for topic, payload in messages:
        if not sender.send(topic, payload):
            return


def paced(sender: Sender, args: argparse.Namespace) -> None:
    """Publish background values at `args.rate` and probes at `args.probe_hz`."""
    probe_topic = workload.tag_topic(args.root, workload.PROBE_TAG_PATH)
    figures = sender.figures
    sent = 0
    for due, probe in _schedule(args.rate, args.seconds, args.probe_hz):
        for i in range(args.offset + sent, args.offset + due):
            ts_ms = time.time_ns() // 1_000_000
            sender.send(workload.value_topic(args.root, i), workload.value_payload(i, ts_ms))
        sent = max(sent, due)
        if probe:
            published_ns = time.time_ns()
            figures.probes += 1
            figures.probe_times_us.append(published_ns // 1000)
            sender.send(probe_topic, workload.probe_payload(published_ns))
        if figures.failed:
            return


def _schedule(rate: float, seconds: float, probe_hz: float) -> Iterator[tuple[int, bool]]:
    """Yield (background messages due so far, whether a probe is due) every tick."""
    start = time.monotonic()
    next_probe = start
    while (now := time.monotonic()) < start + seconds:
        probe = now >= next_probe
        if probe:
            next_probe += 1.0 / probe_hz
        yield int((now - start) * rate), probe
        time.sleep(_TICK_S)


def wait_for_go() -> bool:
    """Announce readiness and wait for ``go`` on stdin."""
    _emit({"ready": True})
    readable, _, _ = select.select([sys.stdin], [], [], _GO_TIMEOUT_S)
    return bool(readable) and sys.stdin.readline().strip() == "go"


def run(args: argparse.Namespace) -> PublishFigures:
    """Connect, prepare, wait for go, publish and wait for the acks."""
    messages = flood_messages(args) if args.mode != "paced" else []
    client, acks = _client(args)
    sender = Sender(client, acks, args)
    try:
        if wait_for_go():
            sender.start()
            if args.mode == "paced":
                paced(sender, args)
            else:
                flood(sender, messages)
            sender.finish()
    finally:
        disconnect(client)
    return sender.figures


def _client(args: argparse.Namespace) -> tuple[paho.Client, AckCounter]:
    password = os.environ.get(PASSWORD_ENV) if args.username is not None else None
    address = BrokerAddress(args.host, args.port, True, args.username, password)
    client = make_client(address, client_id("bench-publisher"))
    client.max_inflight_messages_set(0)  # unlimited: Sender keeps the window
    acks = AckCounter()
    client.on_publish = acks.on_publish
    connect(client, address)
    return client, acks


def _emit(document: dict[str, Any]) -> None:
    sys.stdout.write(orjson.dumps(document).decode() + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> None:
    """Run the publisher and print its figures as one JSON line."""
    figures = run(parse_args(argv))
    _emit({"figures": asdict(figures)})


if __name__ == "__main__":
    main()
