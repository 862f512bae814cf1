"""The trend of one layer of a tag: samples with flagged ones marked, or rollups as a band."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from nicegui import events, ui

from werk.core.clock import NS_PER_MS, from_datetime
from werk.historian.business_schemas import RollupRead
from werk.historian.schemas import PointRead

_FLAG_COLOR: Final = "#c62828"
_MAIN, _FLAGGED, _LOW, _HIGH = range(4)


class LayerChart:
    """A line of samples or rollup averages, min/max lines, and red marks on flagged data."""

    def __init__(self, on_rollup: Callable[[int], Any]) -> None:
        self._starts: list[int] = []
        self._on_rollup = on_rollup
        self._chart = ui.echart(_options(), renderer="canvas").on_point_click(self._clicked)
        self._chart.classes("w-full h-72").props("data-testid=layer-trend")

    def show_samples(self, points: list[PointRead], window: tuple[int, int], unit: str) -> None:
        """Plot numeric samples; samples that carry a rule flag get a red mark."""
        numeric = [(_ms(p), p.value, p.flags) for p in points if isinstance(p.value, int | float)]
        self._starts = []
        self._draw(
            window,
            unit,
            main=("value", [[ts, value] for ts, value, _ in numeric]),
            flagged=[[ts, value, ", ".join(flags)] for ts, value, flags in numeric if flags],
            band=([], []),
        )

    def show_rollups(self, rollups: list[RollupRead], window: tuple[int, int], unit: str) -> None:
        """Plot rollup averages between their min and max; rollups with flags get a red mark."""
        self._starts = [from_datetime(r.start) for r in rollups]
        at = [r.start.timestamp() * 1000 for r in rollups]
        pairs = list(zip(at, rollups, strict=True))
        self._draw(
            window,
            unit,
            main=("avg", [[ts, r.avg] for ts, r in pairs]),
            flagged=[[ts, r.avg, f"{r.flagged} flagged"] for ts, r in pairs if r.flagged],
            band=([[ts, r.min] for ts, r in pairs], [[ts, r.max] for ts, r in pairs]),
        )

    def set_visibility(self, visible: bool) -> None:
        """Show or hide the chart."""
        self._chart.set_visibility(visible)

    def _draw(
        self,
        window: tuple[int, int],
        unit: str,
        *,
        main: tuple[str, list[list[Any]]],
        flagged: list[list[Any]],
        band: tuple[list[list[Any]], list[list[Any]]],
    ) -> None:
        # The options are observed collections: replace them whole, not point by point.
        options = self._chart.options
        start, end = window
        options["xAxis"] = {"type": "time", "min": start / NS_PER_MS, "max": end / NS_PER_MS}
        options["yAxis"] = {"type": "value", "scale": True, "name": unit}
        series = options["series"]
        series[_MAIN] = {**series[_MAIN], "name": main[0], "data": main[1]}
        series[_FLAGGED] = {**series[_FLAGGED], "data": flagged}
        series[_LOW] = {**series[_LOW], "data": band[0]}
        series[_HIGH] = {**series[_HIGH], "data": band[1]}
        options["series"] = list(series)
        options["legend"] = {**options["legend"], "data": [s["name"] for s in series if s["data"]]}

    def _clicked(self, event: events.EChartPointClickEventArguments) -> None:
        if event.series_index in (_MAIN, _LOW, _HIGH) and event.data_index < len(self._starts):
            self._on_rollup(self._starts[event.data_index])


def _ms(point: PointRead) -> float:
    return point.ts.timestamp() * 1000


def _options() -> dict[str, Any]:
    line = {"type": "line", "showSymbol": True, "symbolSize": 4, "lineStyle": {"width": 2}}
    edge = {
        "type": "line",
        "showSymbol": True,
        "symbolSize": 3,
        "lineStyle": {"width": 1, "type": "dashed"},
    }
    return {
        "animation": False,
        "useUTC": True,
        "grid": {"left": 64, "right": 24, "top": 32, "bottom": 40},
        "tooltip": {"trigger": "axis"},
        "legend": {"top": 0, "right": 8},
        "xAxis": {"type": "time"},
        "yAxis": {"type": "value", "scale": True},
        "series": [
            {**line, "name": "value", "data": []},
            {
                "type": "scatter",
                "name": "flagged",
                "symbolSize": 11,
                "itemStyle": {"color": _FLAG_COLOR},
                "z": 5,
                "data": [],
            },
            {**edge, "name": "min", "data": []},
            {**edge, "name": "max", "data": []},
        ],
    }
