"""Figures of the store-and-forward buffer: append rate, bytes per sample, replay rate."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from werk.edge.buffer import Sample, StoreBuffer
from werk.edge.model import TagSpec
from werk.edge.node import EdgeNode
from werk.sparkplug.codec import encode
from werk.sparkplug.datatypes import DataType
from werk.uns.contracts import Quality

TAGS = 20
BATCH = 100  # samples per record: 20 tags x 5 readings, one 100 ms flush at 50 Hz


def bench_buffer(samples: int, *, fsync: bool = False) -> dict[str, float]:
    """Append `samples` double samples, read them back and encode them as historical DDATA."""
    batches = [_batch(start) for start in range(0, samples, BATCH)]
    count = sum(len(b) for b in batches)
    with tempfile.TemporaryDirectory(prefix="werk-bench-buffer-") as directory:
        buffer = StoreBuffer(
            Path(directory), max_bytes=max(64 << 20, count * 64), max_age_s=86_400, fsync=fsync
        )
        buffer.open()
        try:
            append_s = _timed(lambda: [buffer.append("cnc-1", b) for b in batches])
            size = buffer.stats().bytes
            records: list[list[Sample]] = []
            read_s = _timed(lambda: records.extend(r.samples for r in buffer.read(None, count)[0]))
        finally:
            buffer.close()
    encode_s = _timed(lambda: _encode_all(records))
    return {
        "samples": float(count),
        "append_samples_per_s": count / append_s,
        "bytes_per_sample": size / count,
        "read_samples_per_s": count / read_s,
        "replay_metrics_per_s": count / (read_s + encode_s),
    }


def _batch(start: int) -> list[Sample]:
    ts0 = time.time_ns()
    return [
        Sample(
            f"Axis/T{i % TAGS:02d}", DataType.DOUBLE, float(i), ts0 + i * 1_000_000, Quality.GOOD
        )
        for i in range(start, start + BATCH)
    ]


def _encode_all(records: list[list[Sample]]) -> None:
    node = EdgeNode("bench", "bench")
    node.set_device("cnc-1", [TagSpec(f"Axis/T{i:02d}", DataType.DOUBLE) for i in range(TAGS)])
    for samples in records:
        encode(node.ddata("cnc-1", samples, 0, historical=True))


def _timed(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return max(time.perf_counter() - started, 1e-9)
