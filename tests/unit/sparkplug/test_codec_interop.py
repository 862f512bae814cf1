"""werk's codec against pysparkplug (an independent Sparkplug B implementation) in one process.

pysparkplug 0.3 knows the scalar datatypes only (no arrays, DataSets, templates or property
sets); those are checked against the specification's examples in test_codec.py.
"""

from __future__ import annotations

import datetime
from typing import Any

import pysparkplug as psp

from werk.sparkplug import columns
from werk.sparkplug import sparkplug_b_pb2 as pb
from werk.sparkplug.codec import Metric, Payload, decode, encode
from werk.sparkplug.datatypes import DataType

T = 1_700_000_000_000
WHEN = datetime.datetime(2024, 5, 17, 8, 30, 15, 123000, tzinfo=datetime.UTC)

# (datatype, value as pysparkplug takes it, value as werk gives it)
CASES: list[tuple[DataType, Any, Any]] = [
    (DataType.INT8, -128, -128),
    (DataType.INT8, -1, -1),
    (DataType.INT8, 127, 127),
    (DataType.INT16, -32768, -32768),
    (DataType.INT16, -2, -2),
    (DataType.INT32, -(2**31), -(2**31)),
    (DataType.INT32, 2**31 - 1, 2**31 - 1),
    (DataType.INT64, -(2**63), -(2**63)),
    (DataType.INT64, -1, -1),
    (DataType.INT64, 2**63 - 1, 2**63 - 1),
    (DataType.UINT8, 255, 255),
    (DataType.UINT16, 65535, 65535),
    (DataType.UINT32, 2**32 - 1, 2**32 - 1),
    (DataType.UINT64, 2**64 - 1, 2**64 - 1),
    (DataType.FLOAT, 1.5, 1.5),
    (DataType.FLOAT, -3.4028234663852886e38, -3.4028234663852886e38),  # -FLT_MAX
    (DataType.DOUBLE, -2.25e300, -2.25e300),
    (DataType.BOOLEAN, True, True),
    (DataType.BOOLEAN, False, False),
    (DataType.STRING, "héllo ✓", "héllo ✓"),
    (DataType.DATETIME, WHEN, int(WHEN.timestamp() * 1000)),
    (DataType.TEXT, "", ""),
    (DataType.UUID, "6f1c2c6e-5b0e-4f4a-9a5e-3b1f7c3d2e10", "6f1c2c6e-5b0e-4f4a-9a5e-3b1f7c3d2e10"),
    (DataType.BYTES, b"\x00\xff", b"\x00\xff"),
    (DataType.FILE, b"%PDF", b"%PDF"),
]


def their_metrics(*, named: bool) -> list[psp.Metric]:
    return [
        psp.Metric(
            timestamp=T + alias,
            name=f"m{alias}" if named else None,
            alias=alias,
            datatype=psp.DataType(datatype),
            value=value,
        )
        for alias, (datatype, value, _) in enumerate(CASES)
    ]


def our_metrics(*, named: bool) -> tuple[Metric, ...]:
    return tuple(
        Metric(
            name=f"m{alias}" if named else None,
            alias=alias,
            timestamp=T + alias,
            datatype=datatype,
            value=value,
        )
        for alias, (datatype, _, value) in enumerate(CASES)
    )


def as_werk(value: Any) -> Any:
    """pysparkplug's DateTime value in werk's terms (epoch ms)."""
    if isinstance(value, datetime.datetime):
        return round(value.timestamp() * 1000)
    return value


def test_both_libraries_share_one_process_without_protobuf_clashes() -> None:
    assert pb.Payload.DESCRIPTOR.full_name == "werk.sparkplug.b.Payload"
    assert psp.NBirth(timestamp=T, seq=0, metrics=()).encode() == encode(
        Payload(timestamp=T, seq=0)
    )


def test_werk_reads_a_birth_written_by_pysparkplug() -> None:
    raw = psp.NBirth(timestamp=T, seq=0, metrics=their_metrics(named=True)).encode()
    got = decode(raw)
    assert (got.timestamp, got.seq) == (T, 0)
    assert [(m.name, m.alias, m.timestamp, m.datatype) for m in got.metrics] == [
        (f"m{alias}", alias, T + alias, datatype) for alias, (datatype, _, _) in enumerate(CASES)
    ]
    assert [m.value for m in got.metrics] == [expected for _, _, expected in CASES]


def test_werk_reads_data_written_by_pysparkplug_with_types_from_the_birth() -> None:
    birth = decode(psp.NBirth(timestamp=T, seq=0, metrics=their_metrics(named=True)).encode())
    types = {m.alias: m.datatype for m in birth.metrics}
    raw = psp.NData(timestamp=T, seq=1, metrics=their_metrics(named=False)).encode()
    assert not any(item.HasField("datatype") for item in pb.Payload.FromString(raw).metrics)
    got = decode(raw, lambda name, alias: types.get(alias))
    # many plain metrics: the column-wise decoder handled this one
    assert columns.metrics(raw, pb.Payload.FromString(raw), lambda n, a: types.get(a)) is not None
    assert [(m.alias, m.datatype) for m in got.metrics] == [
        (alias, datatype) for alias, (datatype, _, _) in enumerate(CASES)
    ]
    assert [m.value for m in got.metrics] == [expected for _, _, expected in CASES]


def test_pysparkplug_reads_a_birth_written_by_werk() -> None:
    raw = encode(Payload(timestamp=T, seq=0, metrics=our_metrics(named=True)))
    got = psp.NBirth.decode(raw)
    assert (got.timestamp, got.seq) == (T, 0)
    assert [(m.name, m.alias, m.timestamp, int(m.datatype)) for m in got.metrics] == [
        (f"m{alias}", alias, T + alias, datatype) for alias, (datatype, _, _) in enumerate(CASES)
    ]
    assert [as_werk(m.value) for m in got.metrics] == [expected for _, _, expected in CASES]


def test_pysparkplug_reads_data_written_by_werk_against_its_birth() -> None:
    birth = psp.NBirth.decode(encode(Payload(timestamp=T, seq=0, metrics=our_metrics(named=True))))
    raw = encode(Payload(timestamp=T, seq=1, metrics=our_metrics(named=False)))
    got = psp.NData.decode(raw, birth=birth)
    assert [(m.name, m.alias) for m in got.metrics] == [(f"m{a}", a) for a in range(len(CASES))]
    assert [as_werk(m.value) for m in got.metrics] == [expected for _, _, expected in CASES]


def test_both_write_the_same_bytes_for_the_same_birth() -> None:
    exact = [case for case in CASES if case[0] is not DataType.FLOAT]  # float32 rounds
    theirs = [
        psp.Metric(timestamp=T, name=f"m{i}", alias=i, datatype=psp.DataType(d), value=v)
        for i, (d, v, _) in enumerate(exact)
    ]
    ours = tuple(
        Metric(name=f"m{i}", alias=i, timestamp=T, datatype=d, value=v)
        for i, (d, _, v) in enumerate(exact)
    )
    assert (
        encode(Payload(timestamp=T, seq=0, metrics=ours))
        == psp.NBirth(timestamp=T, seq=0, metrics=theirs).encode()
    )
