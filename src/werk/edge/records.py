"""The buffer's record format: one device batch of samples, by tag name, with a CRC.

Little endian: ``u32 body length, u32 crc32, i64 newest sample ns, u32 sample count``,
then the body: ``u16+device``, ``u16 name count`` and ``u16+name`` each, then per sample
``u16 name index, u8 datatype, u8 quality, i64 ts ns, u8 value kind, value``. The CRC
covers the last two header fields and the body. Names are stored once per record, so a
sample of a scalar tag takes about 21 bytes.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from typing import Final, NamedTuple

from werk.core.errors import ValidationFailed
from werk.edge.model import Value
from werk.sparkplug.datatypes import DataType
from werk.uns.contracts import Quality

HEADER: Final = struct.Struct("<IIqI")
_SAMPLE: Final = struct.Struct("<HBBqB")
_U16, _U32 = struct.Struct("<H"), struct.Struct("<I")
_NUMBERS: Final = {3: struct.Struct("<q"), 4: struct.Struct("<Q"), 5: struct.Struct("<d")}
_NULL, _FALSE, _TRUE, _INT, _UINT, _FLOAT, _TEXT = range(7)


class Sample(NamedTuple):
    """One sample, by tag name (aliases may differ after a restart)."""

    tag: str
    datatype: DataType
    value: Value | None
    ts_ns: int
    quality: Quality


def intact(header: bytes, body: bytes) -> bool:
    """Whether a record read back is whole and matches its CRC."""
    if len(header) != HEADER.size:
        return False
    length, crc, _newest, _count = HEADER.unpack(header)
    return len(body) == length and zlib.crc32(body, zlib.crc32(header[8:])) == int(crc)


def encode_record(device: str, samples: Sequence[Sample]) -> bytes:
    """One record: header and body."""
    names: dict[str, int] = {}
    rows = [
        _SAMPLE.pack(names.setdefault(s.tag, len(names)), s.datatype, s.quality, s.ts_ns, kind)
        + value
        for s in samples
        for kind, value in (_encode_value(s.value, s.tag),)
    ]
    head = b"".join((_text(device), _U16.pack(len(names)), *map(_text, names)))
    body = head + b"".join(rows)
    newest = max(s.ts_ns for s in samples)
    crc = zlib.crc32(body, zlib.crc32(struct.pack("<qI", newest, len(samples))))
    return HEADER.pack(len(body), crc, newest, len(samples)) + body


def _text(value: str) -> bytes:
    raw = value.encode("utf-8", "surrogateescape")
    return _U16.pack(len(raw)) + raw


def _encode_value(value: Value | None, tag: str) -> tuple[int, bytes]:
    if value is None or isinstance(value, bool):
        return (_NULL if value is None else _TRUE if value else _FALSE), b""
    if isinstance(value, float):
        return _FLOAT, _NUMBERS[_FLOAT].pack(value)
    if isinstance(value, str):
        raw = value.encode("utf-8", "surrogateescape")
        return _TEXT, _U32.pack(len(raw)) + raw
    kind = _INT if -(2**63) <= value < 2**63 else _UINT
    if not -(2**63) <= value < 2**64:
        raise ValidationFailed(f"the value of {tag!r} does not fit 64 bits", code="value_range")
    return kind, _NUMBERS[kind].pack(value)


def decode_body(body: bytes) -> tuple[str, list[Sample]]:
    """The device and samples of a record body."""
    device, offset = _read_text(body, 0)
    (count,) = _U16.unpack_from(body, offset)
    names = []
    offset += 2
    for _ in range(count):
        name, offset = _read_text(body, offset)
        names.append(name)
    samples = []
    while offset < len(body):
        index, datatype, quality, ts_ns, kind = _SAMPLE.unpack_from(body, offset)
        value, offset = _decode_value(body, offset + _SAMPLE.size, kind)
        samples.append(Sample(names[index], DataType(datatype), value, ts_ns, Quality(quality)))
    return device, samples


def _read_text(body: bytes, offset: int) -> tuple[str, int]:
    (size,) = _U16.unpack_from(body, offset)
    end = offset + 2 + size
    return body[offset + 2 : end].decode("utf-8", "surrogateescape"), end


def _decode_value(body: bytes, offset: int, kind: int) -> tuple[Value | None, int]:
    if kind <= _TRUE:
        return (None, False, True)[kind], offset
    if kind == _TEXT:
        (size,) = _U32.unpack_from(body, offset)
        end = offset + 4 + size
        return body[offset + 4 : end].decode("utf-8", "surrogateescape"), end
    value: int | float = _NUMBERS[kind].unpack_from(body, offset)[0]
    return value, offset + 8
