"""Counters of the benchmark: a bare subscriber, the pipeline's accepted messages, API probes."""

from __future__ import annotations

import bisect
import itertools
import threading
import time
from dataclasses import dataclass
from typing import Any, Final, Protocol

import httpx
import paho.mqtt.client as paho

from werk.core.errors import BrokerUnavailable
from werk.uns.broker import BrokerAddress
from werk.uns.contracts import Decoded
from werk.uns.mqtt import client_id, connect, disconnect, make_client

_API_TIMEOUT_S: Final = 2.0


class Meter(Protocol):
    """A count of messages with the wall-clock time of the first and the latest."""

    @property
    def count(self) -> int:
        """Messages so far."""

    @property
    def first_ns(self) -> int | None:
        """When the first message arrived (epoch ns)."""

    @property
    def last_ns(self) -> int | None:
        """When the latest message was counted (epoch ns)."""


def span_s(meter: Meter) -> float:
    """Seconds from the first message of `meter` to the latest one."""
    if meter.first_ns is None or meter.last_ns is None:
        return 0.0
    return max(0.0, (meter.last_ns - meter.first_ns) / 1e9)


class CountingSubscriber:
    """A bare paho subscriber (MQTT 5, QoS 1) that only counts what it receives."""

    def __init__(self, address: BrokerAddress, topic_filter: str) -> None:
        self._address = address
        self._filter = topic_filter
        self._client = make_client(address, client_id("bench-ceiling"))
        self._subscribed = threading.Event()
        self.count = 0
        self.first_ns: int | None = None
        self.last_ns: int | None = None

    def start(self, timeout_s: float) -> None:
        """Connect and subscribe; raise BrokerUnavailable without a SUBACK in time."""
        connect(self._client, self._address, timeout_s=timeout_s)
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe
        self._client.subscribe(self._filter, qos=1)
        if not self._subscribed.wait(timeout_s):
            disconnect(self._client)
            raise BrokerUnavailable(f"no SUBACK for {self._filter!r} within {timeout_s:g} s")

    def stop(self) -> None:
        """Disconnect."""
        disconnect(self._client)

    def _on_subscribe(self, *_args: Any) -> None:
        self._subscribed.set()

    def _on_message(self, _c: paho.Client, _u: Any, _msg: paho.MQTTMessage) -> None:
        now = time.time_ns()
        if self.first_ns is None:
            self.first_ns = now
        self.count += 1
        self.last_ns = now


class AcceptedMeter:
    """A pipeline listener counting accepted messages from the first one's receive time."""

    def __init__(self) -> None:
        self.count = 0
        self.first_ns: int | None = None
        self.last_ns: int | None = None

    def __call__(self, accepted: list[tuple[Decoded, int]]) -> None:
        """Count one processed batch (called on the ingest worker thread)."""
        if not accepted:
            return
        if self.first_ns is None:
            self.first_ns = min(received_ns for _, received_ns in accepted)
        self.count += len(accepted)
        self.last_ns = time.time_ns()


@dataclass(frozen=True, slots=True)
class Observation:
    """A new last-known value of the probe tag, and when a client first had it."""

    seen_us: int
    value_us: int


class ProbeWatcher:
    """Poll one tag through the REST API and note every change of its value."""

    def __init__(self, base_url: str, tag_path: str, interval_s: float, *, api_key: str) -> None:
        self._base_url = base_url
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self._url = f"/api/v1/tags/{tag_path}"
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="werk-bench-probe", daemon=True)
        self.observations: list[Observation] = []
        self.polls = 0
        self.errors = 0

    def start(self) -> None:
        """Start polling."""
        self._thread.start()

    def stop(self) -> None:
        """Stop polling."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=_API_TIMEOUT_S + 1)

    def seen(self, value_us: int) -> bool:
        """Whether a value at least as new as `value_us` was observed."""
        return bool(self.observations) and self.observations[-1].value_us >= value_us

    def _run(self) -> None:
        with httpx.Client(
            base_url=self._base_url, headers=self._headers, timeout=_API_TIMEOUT_S
        ) as http:
            while not self._stop.wait(self._interval_s):
                self._poll(http)

    def _poll(self, http: httpx.Client) -> None:
        try:
            response = http.get(self._url)
        except httpx.HTTPError:
            self.errors += 1
            return
        seen_us = time.time_ns() // 1000
        self.polls += 1
        if response.status_code == httpx.codes.NOT_FOUND:
            return  # no probe has arrived yet
        if response.status_code != httpx.codes.OK:
            self.errors += 1
            return
        value_us = int(response.json()["value"])
        if not self.observations or value_us != self.observations[-1].value_us:
            self.observations.append(Observation(seen_us, value_us))


def probe_latencies_ms(published_us: list[int], observations: list[Observation]) -> list[float]:
    """Publish-to-visible latency of each probe that became visible, in milliseconds.

    A probe counts as visible at the first observation of it or of a newer probe: probes
    processed in one batch replace each other in the last-known value at the same moment.
    """
    values = list(itertools.accumulate((o.value_us for o in observations), max))
    latencies = []
    for published in published_us:
        at = bisect.bisect_left(values, published)
        if at < len(observations):
            latencies.append((observations[at].seen_us - published) / 1000)
    return latencies
