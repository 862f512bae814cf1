"""The store-and-forward buffer: order, bounds, drop policies, age, crashes, reopen."""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from werk.core.errors import Conflict
from werk.edge.buffer import DropPolicy, Position, Sample, StoreBuffer
from werk.edge.config import BufferConfig, EdgeConfig, NodeConfig
from werk.edge.forward import Forwarder
from werk.edge.model import TagSpec
from werk.edge.node import EdgeNode
from werk.edge.status import Counters
from werk.sparkplug.datatypes import DataType
from werk.uns.contracts import Quality

S = 1_000_000_000
NOW = 1_700_000_000 * S


_OPEN: list[StoreBuffer] = []


@pytest.fixture(autouse=True)
def _close_buffers() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


def _buffer(path: Path, **kwargs: object) -> StoreBuffer:
    options: dict[str, object] = {"max_bytes": 1 << 20, "max_age_s": 3600, "fsync": False}
    options.update(kwargs)
    buffer = StoreBuffer(path, **options)  # type: ignore[arg-type]
    buffer.open()
    _OPEN.append(buffer)
    return buffer


def _samples(start: int, n: int, tags: int = 4, ts0: int = NOW) -> list[Sample]:
    return [
        Sample(f"t{i % tags}", DataType.DOUBLE, float(i), ts0 + i * 1_000_000, Quality.GOOD)
        for i in range(start, start + n)
    ]


def _all(buffer: StoreBuffer) -> list[tuple[str, Sample]]:
    records, _ = buffer.read(None, 10**9)
    return [(r.device, s) for r in records for s in r.samples]


def test_batches_come_back_in_order_by_device(tmp_path: Path) -> None:
    buffer = _buffer(tmp_path)
    buffer.append("cnc-1", _samples(0, 3))
    buffer.append("press", _samples(3, 2))
    buffer.append("cnc-1", _samples(5, 1))
    got = _all(buffer)
    assert [(d, s.value) for d, s in got] == [
        ("cnc-1", 0.0), ("cnc-1", 1.0), ("cnc-1", 2.0), ("press", 3.0), ("press", 4.0),
        ("cnc-1", 5.0),
    ]  # fmt: skip
    assert buffer.stats().samples == 6


def test_every_value_kind_survives_a_reopen(tmp_path: Path) -> None:
    values: list[object] = [None, True, False, -(2**63), 2**64 - 1, 1.5, "Grüße ✓", ""]
    samples = [
        Sample("a/b", DataType.STRING, v, NOW + i, Quality(i % 4))  # type: ignore[arg-type]
        for i, v in enumerate(values)
    ]
    buffer = _buffer(tmp_path)
    buffer.append("dev", samples)
    buffer.close()
    again = _buffer(tmp_path)
    assert [s for _, s in _all(again)] == samples


def test_commit_forgets_and_a_reopen_replays_only_the_rest(tmp_path: Path) -> None:
    buffer = _buffer(tmp_path)
    for i in range(5):
        buffer.append("dev", _samples(i * 10, 10))
    records, cursor = buffer.read(None, 20)
    assert sum(len(r.samples) for r in records) == 20
    buffer.commit(cursor)
    assert buffer.stats().samples == 30
    more, _ = buffer.read(cursor, 10)
    assert more[0].samples[0].value == 20.0
    buffer.close()
    again = _buffer(tmp_path)
    assert [s.value for _, s in _all(again)] == [float(i) for i in range(20, 50)]
    assert again.stats().samples == 30


def test_a_cursor_behind_the_checkpoint_reads_from_the_checkpoint(tmp_path: Path) -> None:
    buffer = _buffer(tmp_path)
    buffer.append("dev", _samples(0, 5))
    buffer.append("dev", _samples(5, 5))
    _first, cursor = buffer.read(None, 5)
    buffer.commit(cursor)
    records, _ = buffer.read(Position(0, 0), 100)
    assert [s.value for r in records for s in r.samples] == [float(i) for i in range(5, 10)]


def test_a_fully_committed_buffer_deletes_its_segments(tmp_path: Path) -> None:
    buffer = _buffer(tmp_path, segment_bytes=2048)
    for i in range(50):
        buffer.append("dev", _samples(i * 10, 10))
    assert buffer.stats().segments > 3
    _, cursor = buffer.read(None, 10**9)
    buffer.commit(cursor)
    stats = buffer.stats()
    assert (stats.samples, stats.segments, stats.bytes) == (0, 1, 0)
    assert len(list(tmp_path.glob("*.seg"))) == 1


def test_drop_oldest_keeps_the_newest_within_max_bytes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    buffer = _buffer(tmp_path, max_bytes=16_384, segment_bytes=2048)
    with caplog.at_level(logging.WARNING, logger="werk.edge.buffer"):
        for i in range(200):
            assert buffer.append("dev", _samples(i * 10, 10)) == 10
    stats = buffer.stats()
    assert stats.bytes <= 16_384
    assert stats.dropped > 0
    assert stats.samples + stats.dropped == 2000
    values = [s.value for _, s in _all(buffer)]
    assert values[-1] == 1999.0
    assert values == sorted(values)
    assert values[0] == float(stats.dropped)  # exactly the oldest ones went
    assert sum("oldest samples are dropped" in r.message for r in caplog.records) == 1


def test_drop_newest_refuses_new_batches_when_full(tmp_path: Path) -> None:
    buffer = _buffer(tmp_path, max_bytes=16_384, segment_bytes=2048, drop=DropPolicy.DROP_NEWEST)
    stored = sum(buffer.append("dev", _samples(i * 10, 10)) for i in range(200))
    stats = buffer.stats()
    assert stats.bytes <= 16_384
    assert stored == stats.samples
    assert stats.dropped == 2000 - stored
    values = [s.value for _, s in _all(buffer)]
    assert values == [float(i) for i in range(stored)]  # the first ones were kept


def test_records_older_than_max_age_are_dropped_from_the_head(tmp_path: Path) -> None:
    buffer = _buffer(tmp_path, max_age_s=60)
    buffer.append("dev", _samples(0, 5, ts0=NOW - 120 * S))
    buffer.append("dev", _samples(5, 5, ts0=NOW - 10 * S))
    assert buffer.expire(NOW) == 5
    assert [s.value for _, s in _all(buffer)] == [5.0, 6.0, 7.0, 8.0, 9.0]
    assert buffer.stats().dropped == 5
    assert buffer.expire(NOW) == 0
    buffer.close()
    assert _buffer(tmp_path, max_age_s=60).stats().samples == 5


def test_a_torn_tail_is_skipped_with_a_log_and_new_data_still_lands(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    buffer = _buffer(tmp_path)
    for i in range(3):
        buffer.append("dev", _samples(i * 10, 10))
    buffer.close()
    (segment,) = tmp_path.glob("*.seg")
    segment.write_bytes(segment.read_bytes()[:-7])  # a crash in the middle of a write
    with caplog.at_level(logging.WARNING, logger="werk.edge.buffer"):
        again = _buffer(tmp_path)
    assert any("torn or corrupt" in r.message for r in caplog.records)
    assert again.stats().samples == 20
    again.append("dev", _samples(30, 10))
    assert [s.value for _, s in _all(again)] == [float(i) for i in (*range(20), *range(30, 40))]


def test_a_corrupt_record_ends_its_segment(tmp_path: Path) -> None:
    buffer = _buffer(tmp_path)
    for i in range(3):
        buffer.append("dev", _samples(i * 10, 10))
    buffer.close()
    (segment,) = tmp_path.glob("*.seg")
    data = bytearray(segment.read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside the second record
    segment.write_bytes(bytes(data))
    again = _buffer(tmp_path)
    assert [s.value for _, s in _all(again)] == [float(i) for i in range(10)]


def test_two_agents_cannot_share_a_buffer(tmp_path: Path) -> None:
    _buffer(tmp_path)
    with pytest.raises(Conflict) as caught:
        _buffer(tmp_path)
    assert caught.value.code == "buffer_locked"


_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=40),
)
_sample = st.builds(
    Sample,
    st.text(min_size=1, max_size=30),
    st.sampled_from(list(DataType)),
    _values,
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from(list(Quality)),
)


@settings(max_examples=60, deadline=None)
@given(batches=st.lists(st.lists(_sample, min_size=1, max_size=20), min_size=1, max_size=5))
def test_any_samples_round_trip(batches: list[list[Sample]]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        buffer = _buffer(Path(directory))
        for i, batch in enumerate(batches):
            buffer.append(f"device-{i}", batch)
        buffer.close()
        again = _buffer(Path(directory))
        records, _ = again.read(None, 10**9)
        again.close()
    assert [(r.device, r.samples) for r in records] == [
        (f"device-{i}", batch) for i, batch in enumerate(batches)
    ]


def test_a_failed_live_publish_buffers_the_unconfirmed_window_first(tmp_path: Path) -> None:
    """Samples that could not go out come after the ones sent just before, per tag."""

    def sample(i: int) -> Sample:
        return Sample("t", DataType.DOUBLE, float(i), NOW + i, Quality.GOOD)

    async def scenario() -> list[object]:
        config = EdgeConfig(
            node=NodeConfig(group="g", edge_node="n"),
            buffer=BufferConfig(path=tmp_path, fsync=False),
        )
        node = EdgeNode("g", "n")
        node.set_device("dev", [TagSpec("t", DataType.DOUBLE)])
        connected = [True]
        forward = Forwarder(config, node, lambda _topic, _payload: connected[0], Counters())
        await forward.open()
        forward.live = True
        forward.add("dev", [sample(1), sample(2)])
        await forward.flush({"dev"})  # out, but not yet confirmed
        connected[0] = False  # the connection died unnoticed
        forward.add("dev", [sample(3)])
        await forward.flush({"dev"})
        records, _ = await forward.io(forward.buffer.read, None, 100)
        await forward.close()
        return [s.value for r in records for s in r.samples]

    assert asyncio.run(scenario()) == [1.0, 2.0, 3.0]
