"""The benchmark's messages (topics and payloads of single-tag, batch and probe messages)
and the figures of publishing them.

Every message differs from every other (value or timestamp), because ingest drops a
message it has already stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import orjson

NODE: Final = "acme/bench/area/line-1/cell-1"
MACHINES: Final = 10
TAGS_PER_MACHINE: Final = 100
BATCH_TAGS: Final = 100
PROBE_TAG_PATH: Final = f"{NODE}/probe/latency"
WARMUP_TAG_PATH: Final = f"{NODE}/probe/warmup"
_BATCH_KEYS: Final = tuple(f"t{j}" for j in range(BATCH_TAGS))


def machine(i: int) -> str:
    """The machine node of message `i`, cycling through `MACHINES` machines."""
    return f"{NODE}/m-{(i // TAGS_PER_MACHINE) % MACHINES}"


def value_topic(root: str, i: int) -> str:
    """The `_value` topic of message `i`: one of MACHINES x TAGS_PER_MACHINE tags."""
    return f"{root}/{machine(i)}/_value/t{i % TAGS_PER_MACHINE}"


def value_payload(i: int, ts_ms: int) -> bytes:
    """A `value/v1` payload whose value is unique to message `i`."""
    return orjson.dumps({"value": i + 0.5, "ts": ts_ms})


def batch_topic(root: str, i: int) -> str:
    """The `_batch` topic of batch message `i`, cycling through the machines."""
    return f"{root}/{NODE}/m-{i % MACHINES}/_batch"


def batch_payload(i: int, ts_ms: int) -> bytes:
    """A `batch/v1` payload of BATCH_TAGS values unique to message `i`."""
    base = float(i * BATCH_TAGS)
    values = {key: base + j for j, key in enumerate(_BATCH_KEYS)}
    return orjson.dumps({"ts": ts_ms, "values": values})


def tag_topic(root: str, tag_path: str) -> str:
    """The `_value` topic of a tag path such as ``acme/.../probe/latency``."""
    node, tag = tag_path.rsplit("/", 1)
    return f"{root}/{node}/_value/{tag}"


def probe_payload(published_ns: int) -> bytes:
    """A probe value carrying its publish time in epoch microseconds (exact in a double)."""
    return orjson.dumps({"value": float(published_ns // 1000), "ts": published_ns // 1_000_000})


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


SPARKPLUG_GROUP: Final = "bench"
SPARKPLUG_DEVICE: Final = "machine"


def sparkplug_messages(metrics: int, count: int, ts_ms: int) -> list[tuple[str, bytes]]:
    """NBIRTH, DBIRTH and `count` DDATA messages of `metrics` Double metrics each.

    The edge node is named after the metric count, so runs of different sizes do not
    share births. DDATA carries aliases only, as Sparkplug edge nodes do.
    """
    from werk.sparkplug.codec import Metric, Payload, encode
    from werk.sparkplug.datatypes import DataType
    from werk.sparkplug.topics import MessageType, SparkplugTopic

    node = f"bench-{metrics}"
    birth = tuple(
        Metric(name=f"m{j}", alias=j, datatype=DataType.DOUBLE, value=0.0, timestamp=ts_ms)
        for j in range(metrics)
    )
    bd_seq = Metric(name="bdSeq", datatype=DataType.UINT64, value=0, timestamp=ts_ms)
    topic = SparkplugTopic(SPARKPLUG_GROUP, MessageType.DDATA, node, SPARKPLUG_DEVICE).topic
    messages = [
        (SparkplugTopic(SPARKPLUG_GROUP, MessageType.NBIRTH, node).topic,
         encode(Payload(timestamp=ts_ms, metrics=(bd_seq,), seq=0))),
        (SparkplugTopic(SPARKPLUG_GROUP, MessageType.DBIRTH, node, SPARKPLUG_DEVICE).topic,
         encode(Payload(timestamp=ts_ms, metrics=birth, seq=1))),
    ]  # fmt: skip
    for i in range(count):
        stamp = ts_ms + i + 1
        data = tuple(
            Metric(alias=j, value=i + j / metrics, timestamp=stamp) for j in range(metrics)
        )
        messages.append((topic, encode(Payload(timestamp=stamp, metrics=data, seq=(i + 2) % 256))))
    return messages
