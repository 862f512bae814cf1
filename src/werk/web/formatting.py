"""How the pages show values, times, sizes and qualities."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Final

QUALITY_COLORS: Final = {
    "good": "positive",
    "uncertain": "warning",
    "bad": "negative",
    "stale": "grey-6",
}
_KIB: Final = 1024


def format_value(value: bool | float | str | None) -> str:
    """Show a tag value the way an operator reads it."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _format_float(value)
    return str(value)


def _format_float(value: float) -> str:
    if abs(value) >= 1e9 or (value != 0 and abs(value) < 1e-3):
        return f"{value:.4g}"
    return f"{value:.3f}".rstrip("0").rstrip(".")


def format_time(moment: datetime) -> str:
    """Show a moment in UTC with milliseconds."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def format_rate(rate_per_s: float) -> str:
    """Show a sample rate."""
    return f"{rate_per_s:.2f}/s"


def format_size(size: int) -> str:
    """Show a byte count."""
    if size < _KIB:
        return f"{size} B"
    if size < _KIB * _KIB:
        return f"{size / _KIB:.1f} KiB"
    return f"{size / (_KIB * _KIB):.1f} MiB"


def count_of(count: int, noun: str) -> str:
    """A count with its noun, plural unless one."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def quality_color(quality: str) -> str:
    """The badge colour of a quality."""
    return QUALITY_COLORS.get(quality, "grey-6")


def quality_cell_slot() -> str:
    """A table body-cell template that shows the cell's quality as a coloured badge."""
    colors = json.dumps(QUALITY_COLORS).replace('"', "'")
    return (
        '<q-td :props="props">'
        f'<q-badge :color="({colors})[props.value] || \'grey-6\'" :label="props.value" />'
        "</q-td>"
    )
