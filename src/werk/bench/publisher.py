"""The benchmark's load generator, run in its own process: ``python -m werk.bench.publisher``.

It connects (MQTT 5, QoS 1), prepares its messages, prints ``{"ready": true}``, waits for
``go`` on stdin, publishes, waits for the broker's acks, and prints one JSON line of
figures. Modes: ``single`` and ``batch`` publish `--count` messages as fast as paho
allows; ``paced`` publishes single-tag messages at `--rate` for `--seconds`, with a
probe value carrying its publish time `--probe-hz` times a second.
"""

from __future__ import annotations

import argparse
import select
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Final

import orjson
import paho.mqtt.client as paho

from werk.bench import workload
from werk.uns.broker import BrokerAddress
from werk.uns.mqtt import client_id, connect, disconnect, make_client

_GO_TIMEOUT_S: Final = 120.0
_TICK_S: Final = 0.005


@dataclass(slots=True)
class PublishFigures:
    """What the publisher did, as printed on its last line."""

    mode: str
    published: int = 0
    acked: int = 0
    failed: int = 0
    probes: int = 0
    probe_times_us: list[int] = field(default_factory=list)
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    complete: bool = False


class AckCounter:
    """Count PUBACKs from paho's network thread and signal when a target is reached."""

    def __init__(self) -> None:
        self.acked = 0
        self.target: int | None = None
        self.done = threading.Event()

    def on_publish(self, _c: paho.Client, _u: Any, _mid: int, _rc: Any, _p: Any) -> None:
        """Count one acknowledged publish."""
        self.acked += 1
        if self.target is not None and self.acked >= self.target:
            self.done.set()

    def expect(self, total: int, timeout_s: float) -> bool:
        """Wait until `total` publishes are acknowledged; False on timeout."""
        self.target = total
        if self.acked >= total:
            return True
        return self.done.wait(timeout_s)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(prog="python -m werk.bench.publisher")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True, help="the broker's MQTT 5 port")
    parser.add_argument("--root", default="uns/v1")
    parser.add_argument("--mode", choices=("single", "batch", "paced"), required=True)
    parser.add_argument("--count", type=int, default=0, help="messages (single, batch)")
    parser.add_argument("--offset", type=int, default=0, help="first message number")
    parser.add_argument("--inflight", type=int, default=4096)
    parser.add_argument("--rate", type=float, default=0.0, help="messages/s (paced)")
    parser.add_argument("--seconds", type=float, default=0.0, help="duration (paced)")
    parser.add_argument("--probe-hz", type=float, default=50.0, help="probes/s (paced)")
    parser.add_argument("--timeout", type=float, default=300.0, help="wait for acks at most")
    return parser.parse_args(argv)


def flood_messages(args: argparse.Namespace) -> list[tuple[str, bytes]]:
    """Every message of a flood run, built before the clock starts."""
    ts_ms = time.time_ns() // 1_000_000
    numbers = range(args.offset, args.offset + args.count)
    if args.mode == "batch":
        return [
            (workload.batch_topic(args.root, i), workload.batch_payload(i, ts_ms)) for i in numbers
        ]
    return [(workload.value_topic(args.root, i), workload.value_payload(i, ts_ms)) for i in numbers]


def publish(client: paho.Client, figures: PublishFigures, topic: str, payload: bytes) -> None:
    """Hand one QoS 1 message to paho, counting refusals."""
    if client.publish(topic, payload, qos=1).rc == paho.MQTT_ERR_SUCCESS:
        figures.published += 1
    else:
        figures.failed += 1


def flood(client: paho.Client, figures: PublishFigures, messages: list[tuple[str, bytes]]) -> None:
    """Publish every message as fast as paho takes them."""
    for topic, payload in messages:
        publish(client, figures, topic, payload)


def paced(client: paho.Client, figures: PublishFigures, args: argparse.Namespace) -> None:
    """Publish background values at `args.rate` and probes at `args.probe_hz`."""
    probe_topic = workload.tag_topic(args.root, workload.PROBE_TAG_PATH)
    sent = 0
    for due, probe in _schedule(args.rate, args.seconds, args.probe_hz):
        for i in range(args.offset + sent, args.offset + due):
            ts_ms = time.time_ns() // 1_000_000
            publish(
                client,
                figures,
                workload.value_topic(args.root, i),
                workload.value_payload(i, ts_ms),
            )
        sent = max(sent, due)
        if probe:
            published_ns = time.time_ns()
            figures.probes += 1
            figures.probe_times_us.append(published_ns // 1000)
            publish(client, figures, probe_topic, workload.probe_payload(published_ns))


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
    figures = PublishFigures(args.mode)
    messages = flood_messages(args) if args.mode != "paced" else []
    client, acks = _client(args)
    try:
        if wait_for_go():
            _timed(figures, acks, args.timeout, lambda: _load(client, figures, messages, args))
    finally:
        disconnect(client)
    return figures


def _load(
    client: paho.Client,
    figures: PublishFigures,
    messages: list[tuple[str, bytes]],
    args: argparse.Namespace,
) -> None:
    if args.mode == "paced":
        paced(client, figures, args)
    else:
        flood(client, figures, messages)


def _timed(
    figures: PublishFigures, acks: AckCounter, timeout_s: float, load: Callable[[], None]
) -> None:
    wall, cpu = time.perf_counter(), time.process_time()
    load()
    figures.complete = acks.expect(figures.published, timeout_s) and figures.failed == 0
    figures.acked = acks.acked
    figures.seconds = time.perf_counter() - wall
    figures.cpu_seconds = time.process_time() - cpu


def _client(args: argparse.Namespace) -> tuple[paho.Client, AckCounter]:
    address = BrokerAddress(args.host, args.port, mqtt5=True)
    client = make_client(address, client_id("bench-publisher"))
    client.max_inflight_messages_set(args.inflight)
    client.max_queued_messages_set(0)  # unlimited: the flood is bounded by --count
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
