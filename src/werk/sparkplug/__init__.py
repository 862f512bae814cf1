"""Sparkplug B 3.0: the codec, and werk's primary host application."""

from werk.sparkplug.codec import (
    REASONS,
    DataColumns,
    DataSet,
    MetaData,
    Metric,
    Parameter,
    Payload,
    PropertySet,
    PropertyValue,
    Template,
    data_columns,
    decode,
    encode,
)
from werk.sparkplug.datatypes import DataType
from werk.sparkplug.effects import HostEffects
from werk.sparkplug.host import SparkplugHost
from werk.sparkplug.mapping import UnsMapper
from werk.sparkplug.topics import (
    NAMESPACE,
    HostState,
    MessageType,
    SparkplugTopic,
    StateTopic,
    parse_topic,
    state_topic,
)

__all__ = [
    "NAMESPACE",
    "REASONS",
    "DataColumns",
    "DataSet",
    "DataType",
    "HostEffects",
    "HostState",
    "MessageType",
    "MetaData",
    "Metric",
    "Parameter",
    "Payload",
    "PropertySet",
    "PropertyValue",
    "SparkplugHost",
    "SparkplugTopic",
    "StateTopic",
    "Template",
    "UnsMapper",
    "data_columns",
    "decode",
    "encode",
    "parse_topic",
    "state_topic",
]
