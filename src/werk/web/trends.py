"""The trend of a tag: a line chart of numbers, or a table of a text tag's changes."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final, Protocol

from nicegui import ui

from werk.core.clock import NS_PER_MS, NS_PER_S
from werk.historian.schemas import PointRead
from werk.uns.schemas import TagRead
from werk.web.formatting import format_time, format_value, quality_cell_slot

WINDOW_NS: Final = 10 * 60 * NS_PER_S
CHANGES_SHOWN: Final = 100
_CHANGE_COLUMNS: Final[list[dict[str, Any]]] = [
    {"name": "ts", "label": "Source time (UTC)", "field": "ts", "align": "left"},
    {"name": "value", "label": "Value", "field": "value", "align": "left"},
    {"name": "quality", "label": "Quality", "field": "quality", "align": "left"},
]


class Trend(Protocol):
    """What the tag page asks of a trend."""

    def load(self, points: list[PointRead]) -> None:
        """Take the historian's samples, oldest first; `slide` shows them."""

    def add(self, tag: TagRead) -> None:
        """Add the tag's new last-known value."""

    def slide(self, now: int) -> None:
        """Move the window to end at `now` (epoch ns) and drop what fell out."""


class NumericTrend:
    """A line chart over a time axis; booleans show as a 0/1 step line."""

    def __init__(self, tag: TagRead) -> None:
        self._data: list[list[float]] = []
        self._chart = ui.echart(_chart_options(tag), renderer="canvas")
        self._chart.classes("w-full h-80").props("data-testid=tag-trend")

    def load(self, points: list[PointRead]) -> None:
        """Plot the historian's numeric samples."""
        self._data = [[_ms(p.ts), p.value] for p in points if isinstance(p.value, int | float)]

    def add(self, tag: TagRead) -> None:
        """Append the new value unless the historian already delivered it."""
        if isinstance(tag.value, str):
            return
        ts = _ms(tag.ts)
        if self._data and ts <= self._data[-1][0]:
            return
        self._data.append([ts, float(tag.value)])

    def slide(self, now: int) -> None:
        """Keep the last ten minutes on the axis and in memory."""
        start = (now - WINDOW_NS) / NS_PER_MS
        keep = next((i for i, point in enumerate(self._data) if point[0] >= start), len(self._data))
        del self._data[:keep]
        self._draw(start, max(now / NS_PER_MS, self._data[-1][0] if self._data else 0.0))

    def _draw(self, start: float, end: float) -> None:
        # The options are observed collections: replace them whole, not point by point.
        options = self._chart.options
        options["xAxis"] = {"type": "time", "min": start, "max": end}
        options["series"][0]["data"] = list(self._data)


class StateChanges:
    """A table of a text tag's recent changes, newest first."""

    def __init__(self) -> None:
        self._table = ui.table(rows=[], columns=_CHANGE_COLUMNS, row_key="key")
        self._table.props("flat dense data-testid=tag-changes").classes("w-full")
        self._table.add_slot("body-cell-quality", quality_cell_slot())

    def load(self, points: list[PointRead]) -> None:
        """Show the samples where the value changed."""
        rows: list[dict[str, Any]] = []
        for point in points:
            if not rows or rows[-1]["value"] != format_value(point.value):
                rows.append(_change(point.ts, point.value, point.quality))
        self._table.rows = rows[::-1][:CHANGES_SHOWN]

    def add(self, tag: TagRead) -> None:
        """Put the new value on top if it differs from the newest shown."""
        rows = self._table.rows
        if rows and rows[0]["value"] == format_value(tag.value):
            return
        self._table.rows = [_change(tag.ts, tag.value, tag.quality), *rows][:CHANGES_SHOWN]

    def slide(self, now: int) -> None:
        """Keep every shown change: a state holds until the next change, however old."""


def _change(ts: datetime, value: bool | float | str | None, quality: str) -> dict[str, Any]:
    return {
        "key": f"{ts.isoformat()}/{value}",
        "ts": format_time(ts),
        "value": format_value(value),
        "quality": quality,
    }


def _ms(moment: datetime) -> float:
    return moment.timestamp() * 1000


def _chart_options(tag: TagRead) -> dict[str, Any]:
    return {
        "animation": False,
        "useUTC": True,
        "grid": {"left": 64, "right": 24, "top": 32, "bottom": 40},
        "tooltip": {"trigger": "axis"},
        "xAxis": {"type": "time"},
        "yAxis": _boolean_axis() if tag.data_type == "boolean" else _number_axis(tag.unit),
        "series": [
            {
                "type": "line",
                "name": tag.path.rsplit("/", 1)[-1],
                "showSymbol": True,
                "symbolSize": 5,
                "step": "end" if tag.data_type == "boolean" else False,
                "data": [],
                "lineStyle": {"width": 2},
                "areaStyle": {"opacity": 0.08},
            }
        ],
    }


def _number_axis(unit: str | None) -> dict[str, Any]:
    return {"type": "value", "scale": True, "name": unit or ""}


def _boolean_axis() -> dict[str, Any]:
    # A leading ':' makes NiceGUI hand the value to ECharts as JavaScript.
    return {
        "type": "value",
        "min": 0,
        "max": 1,
        "interval": 1,
        "axisLabel": {":formatter": "value => (value ? 'true' : 'false')"},
    }
