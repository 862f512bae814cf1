"""The ingest spool: durable append, checkpoint, replay, torn tails."""

from __future__ import annotations

from pathlib import Path

from werk.uns.spool import FLAG_OVERFLOW, Spool, SpoolRecord


def _records(n: int, start: int = 0) -> list[SpoolRecord]:
    return [
        SpoolRecord(f"uns/v1/a/b/c/d/e/_value/t{i}", b'{"value": %d}' % i, i, 0)
        for i in range(start, start + n)
    ]


def _spool(path: Path, segment_bytes: int = 1 << 20) -> Spool:
    return Spool(path, segment_bytes=segment_bytes, fsync=False)


def _reopen(path: Path) -> list[SpoolRecord]:
    spool = _spool(path)
    spool.open()
    try:
        return [record for record, _ in spool.pending()]
    finally:
        spool.close()


def test_everything_after_the_checkpoint_is_replayed(tmp_path: Path) -> None:
    spool = _spool(tmp_path)
    spool.open()
    assert list(spool.pending()) == []
    first = spool.append(_records(3))
    spool.append(_records(2, start=3))
    spool.commit(first)
    spool.close()
    replayed = _reopen(tmp_path)
    assert [r.received_ns for r in replayed] == [3, 4]
    assert replayed[0].topic.endswith("/t3")
    assert replayed[0].payload == b'{"value": 3}'


def test_nothing_is_replayed_after_a_full_commit(tmp_path: Path) -> None:
    spool = _spool(tmp_path)
    spool.open()
    spool.commit(spool.append(_records(10)))
    spool.close()
    assert _reopen(tmp_path) == []


def test_committed_segments_are_deleted(tmp_path: Path) -> None:
    spool = _spool(tmp_path, segment_bytes=64 * 1024)
    spool.open()
    big = [SpoolRecord("t", b"x" * 20_000, i, 0) for i in range(10)]
    for record in big:
        spool.append([record])
    assert spool.stats().segments > 2
    spool.commit(spool.position)
    assert spool.stats().segments == 1
    spool.close()


def test_a_torn_record_is_cut_off_and_the_rest_kept(tmp_path: Path) -> None:
    spool = _spool(tmp_path)
    spool.open()
    spool.append(_records(3))
    spool.close()
    (segment,) = tmp_path.glob("*.seg")
    segment.write_bytes(segment.read_bytes()[:-5])
    replayed = _reopen(tmp_path)
    assert [r.received_ns for r in replayed] == [0, 1]


def test_a_corrupted_record_stops_the_replay_of_its_segment(tmp_path: Path) -> None:
    spool = _spool(tmp_path)
    spool.open()
    spool.append(_records(3))
    spool.close()
    (segment,) = tmp_path.glob("*.seg")
    data = bytearray(segment.read_bytes())
    data[-1] ^= 0xFF
    segment.write_bytes(bytes(data))
    assert len(_reopen(tmp_path)) == 2


def test_flags_and_unusual_topics_survive(tmp_path: Path) -> None:
    spool = _spool(tmp_path)
    spool.open()
    odd = SpoolRecord("uns/v1/ä/\udcff", b"\x00\xff", 42, FLAG_OVERFLOW)
    spool.append([odd])
    spool.close()
    assert _reopen(tmp_path) == [odd]


def test_pending_positions_resume_exactly(tmp_path: Path) -> None:
    spool = _spool(tmp_path)
    spool.open()
    spool.append(_records(4))
    spool.close()
    again = _spool(tmp_path)
    again.open()
    pending = list(again.pending())
    assert again.oldest_pending_ns() == 0
    again.commit(pending[1][1])  # the first two are stored
    again.close()
    assert [r.received_ns for r in _reopen(tmp_path)] == [2, 3]
