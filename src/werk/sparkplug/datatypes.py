"""Sparkplug B 3.0 metric data types and the quality convention werk uses on the wire."""

from __future__ import annotations

from enum import IntEnum
from typing import Final


class DataType(IntEnum):
    """Metric data types, numbered as in the Sparkplug B 3.0 protobuf definition."""

    UNKNOWN = 0
    INT8 = 1
    INT16 = 2
    INT32 = 3
    INT64 = 4
    UINT8 = 5
    UINT16 = 6
    UINT32 = 7
    UINT64 = 8
    FLOAT = 9
    DOUBLE = 10
    BOOLEAN = 11
    STRING = 12
    DATETIME = 13
    TEXT = 14
    UUID = 15
    DATASET = 16
    BYTES = 17
    FILE = 18
    TEMPLATE = 19
    PROPERTY_SET = 20
    PROPERTY_SET_LIST = 21
    INT8_ARRAY = 22
    INT16_ARRAY = 23
    INT32_ARRAY = 24
    INT64_ARRAY = 25
    UINT8_ARRAY = 26
    UINT16_ARRAY = 27
    UINT32_ARRAY = 28
    UINT64_ARRAY = 29
    FLOAT_ARRAY = 30
    DOUBLE_ARRAY = 31
    BOOLEAN_ARRAY = 32
    STRING_ARRAY = 33
    DATETIME_ARRAY = 34

    @property
    def is_array(self) -> bool:
        """Whether values of this type are packed arrays carried in `bytes_value`."""
        return DataType.INT8_ARRAY <= self <= DataType.DATETIME_ARRAY


INTEGER_TYPES: Final = frozenset(
    {
        DataType.INT8,
        DataType.INT16,
        DataType.INT32,
        DataType.INT64,
        DataType.UINT8,
        DataType.UINT16,
        DataType.UINT32,
        DataType.UINT64,
        DataType.DATETIME,
    }
)
FLOAT_TYPES: Final = frozenset({DataType.FLOAT, DataType.DOUBLE})
TEXT_TYPES: Final = frozenset({DataType.STRING, DataType.TEXT, DataType.UUID})

# Sparkplug has no quality field; werk (like Ignition) sends one as an Int32 metric
# property named "Quality" carrying OPC quality codes.
QUALITY_PROPERTY: Final = "Quality"
OPC_GOOD: Final = 192
OPC_UNCERTAIN: Final = 64
OPC_BAD: Final = 0

# A write sent by werk carries its command id as a metric property; the edge node's answer
# (a DATA message with the metric read back) carries the id, a status and on failure an error.
COMMAND_ID: Final = "werk.command_id"
COMMAND_STATUS: Final = "werk.command_status"
COMMAND_ERROR: Final = "werk.command_error"
