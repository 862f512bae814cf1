"""Unified Namespace: ISA-95 topics, payload contracts, registry, broker and ingest."""

from werk.core.filters import matches
from werk.uns.contracts import CONTRACTS, Quality, Sample, decode
from werk.uns.namespace import Namespace, TagState
from werk.uns.topics import DataClass, Node, UnsTopic, parse_tag_path, parse_topic

__all__ = [
    "CONTRACTS",
    "DataClass",
    "Namespace",
    "Node",
    "Quality",
    "Sample",
    "TagState",
    "UnsTopic",
    "decode",
    "matches",
    "parse_tag_path",
    "parse_topic",
]
