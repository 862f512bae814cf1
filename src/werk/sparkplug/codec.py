"""Sparkplug B 3.0 payload codec: bytes <-> werk's immutable payload values. Pure, no I/O.

`decode` turns any bytes into a `Payload` or raises `PayloadError` with one of the codes in
`REASONS`; it never raises anything else. A metric's own datatype wins; otherwise
`datatype_of(name, alias)` supplies the one announced in the birth (NDATA/DDATA normally carry
only alias and value); with neither, the raw protobuf field is returned (uint32/uint64 -> int,
float/double -> float, bool, str, bytes, DataSet, Template) and `datatype` stays None.
`datatype_of` is asked about top-level metrics only; members of a template carry their own.

Wire conventions (Sparkplug B 3.0 specification, chapter "Payloads", "Datatype Details"):

* Signed integers are two's complement in the unsigned `int_value` (Int8/16/32) and `long_value`
  (Int64). werk encodes them width-specific (Int8 -1 -> 0xFF) like pysparkplug and Tahu's Python
  library (pysparkplug accepts nothing else); decoding also accepts the 32-bit sign extension of
  Tahu's Java encoder (Int8 -1 -> 0xFFFFFFFF). Either integer field is accepted for any integer
  type, either float field for FLOAT and DOUBLE, range-checked.
* DateTime and DateTimeArray elements are epoch milliseconds (UTC), as signed 64-bit numbers.
* Arrays travel packed little-endian in `bytes_value`; BooleanArray is a 4-byte little-endian
  count followed by the bits, most significant bit first; StringArray is NUL-terminated UTF-8.
* NaN and infinities are legal FLOAT/DOUBLE values and are kept.
* A value without datatype is encoded in the field its Python type implies (bool, int in
  `int_value` below 2**32 else `long_value`, float in `double_value`, str, bytes, DataSet,
  Template); DataType.UNKNOWN is encoded as no datatype.
* Templates and property sets may nest 16 levels deep; deeper is `sparkplug_too_deep` both ways.
"""

from __future__ import annotations

from google.protobuf.message import DecodeError

from werk.core.errors import PayloadError
from werk.sparkplug import columns, decoder, encoder
from werk.sparkplug import sparkplug_b_pb2 as pb
from werk.sparkplug.columns import DataColumns, data_columns
from werk.sparkplug.payload import (
    DataSet,
    DatatypeLookup,
    MetaData,
    Metric,
    MetricValue,
    Parameter,
    Payload,
    PropertySet,
    PropertyValue,
    Template,
)
from werk.sparkplug.values import REASONS, Fault

__all__ = [
    "REASONS",
    "DataColumns",
    "DataSet",
    "DatatypeLookup",
    "MetaData",
    "Metric",
    "MetricValue",
    "Parameter",
    "Payload",
    "PropertySet",
    "PropertyValue",
    "Template",
    "data_columns",
    "decode",
    "encode",
]


def encode(payload: Payload) -> bytes:
    """Encode a payload; PayloadError(code="sparkplug_encode") names the value that does not fit."""
    try:
        return encoder.payload(payload).SerializeToString()
    except Fault as fault:
        raise _error(fault) from None


def decode(data: bytes, datatype_of: DatatypeLookup | None = None) -> Payload:
    """Decode a Sparkplug B payload; any defect raises PayloadError with a code from REASONS."""
    try:
        message = pb.Payload.FromString(data)
    except DecodeError as exc:
        fault = Fault(
            "sparkplug_protobuf", f"not a Sparkplug B protobuf ({len(data)} bytes): {exc}"
        )
        raise _error(fault) from exc
    try:
        fast = columns.metrics(data, message, datatype_of)
        if fast is None:
            return decoder.payload(message, datatype_of)
        return decoder.payload_around(message, fast)
    except Fault as fault:
        raise _error(fault) from None


def _error(fault: Fault) -> PayloadError:
    where = "metric " + " > ".join(fault.path) if fault.path else "payload"
    return PayloadError(
        f"{where}: {fault.detail}", code=fault.code, metric=where, reason=REASONS[fault.code]
    )
