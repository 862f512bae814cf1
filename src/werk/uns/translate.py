"""Translators: protocols other than UNS JSON (such as Sparkplug B) into UNS samples.

The historian writer hands every spooled message whose topic starts with a translator's
prefix to that translator, in arrival order, and stores what comes back exactly like a
UNS JSON message: one namespace, one last-known-value store, one historian.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from werk.uns.contracts import Decoded, Sample


@dataclass(frozen=True, slots=True)
class Translation:
    """What one message turned into.

    `decoded` is None for messages that carry no samples (lifecycle, commands).
    `problems` are (reason, detail) pairs kept in quarantine together with the message,
    for parts that could not be taken (the rest is stored). `historical` samples may
    repeat samples already stored; the writer skips those with the same tag and time.
    `transient` samples update the last-known values but are not historized.
    """

    decoded: Decoded | None
    problems: tuple[tuple[str, str], ...] = ()
    historical: bool = False
    transient: tuple[Sample, ...] = ()


class Translator(Protocol):
    """Turns the messages below one topic prefix into UNS samples."""

    @property
    def topic_prefix(self) -> str:
        """Topics starting with this are translated by this translator."""
        ...

    def translate(self, topic: str, payload: bytes, received_ns: int) -> Translation:
        """Translate one message; raise a `WerkError` to quarantine all of it."""
        ...

    def tick(self, now_ns: int) -> None:
        """Let time-based rules run (called at least every 200 ms by the writer)."""
        ...
