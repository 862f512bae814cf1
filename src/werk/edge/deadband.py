"""Report by exception: publish a reading only when it tells consumers something new."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from werk.edge.model import Reading, TagSpec, Value


class ReportByException:
    """Filters readings against the last reported reading of each tag and its deadband.

    A reading passes when it is the first of its tag, its quality changed, a non-numeric
    value changed, or a numeric value moved by more than the tag's absolute deadband
    from the last *reported* value (deadband 0: any change). NaN to a number and a
    number to NaN are changes.
    """

    def __init__(self, specs: Iterable[TagSpec]) -> None:
        self._deadbands: dict[str, float] = {}
        self._last: dict[str, Reading] = {}
        self.update_specs(specs)

    def update_specs(self, specs: Iterable[TagSpec]) -> None:
        """Use the deadbands of these tags from now on (last reported values are kept)."""
        self._deadbands = {spec.name: spec.deadband for spec in specs}

    def filter(self, readings: Sequence[Reading]) -> list[Reading]:
        """Return the readings that must be published, and remember them as reported."""
        published: list[Reading] = []
        for reading in readings:
            last = self._last.get(reading.tag)
            if last is None or self._is_news(reading, last):
                self._last[reading.tag] = reading
                published.append(reading)
        return published

    def forget(self) -> None:
        """Treat every next reading as the first (after a rebirth)."""
        self._last.clear()

    def _is_news(self, reading: Reading, last: Reading) -> bool:
        if reading.quality != last.quality:
            return True
        return _changed(last.value, reading.value, self._deadbands.get(reading.tag, 0.0))


def _changed(old: Value | None, new: Value | None, deadband: float) -> bool:
    old_number, new_number = _number(old), _number(new)
    if old_number is None or new_number is None:
        return type(old) is not type(new) or old != new
    old_nan, new_nan = _is_nan(old_number), _is_nan(new_number)
    if old_nan or new_nan:
        return old_nan != new_nan
    if deadband <= 0.0:
        return old_number != new_number
    return abs(new_number - old_number) > deadband


def _number(value: Value | None) -> int | float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value


def _is_nan(value: int | float) -> bool:
    return isinstance(value, float) and math.isnan(value)
