"""Tables of the layer browser and the lineage panel: columns, rows and the row template."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import quote

from nicegui import ui

from werk.core.clock import from_datetime
from werk.historian.business_schemas import KpiRead, MessagePoint, RollupRead
from werk.historian.layers import Layer
from werk.historian.schemas import PointRead
from werk.web.formatting import QUALITY_COLORS, format_time, format_value

WIDTH_LABELS: Final = {60: "1 min", 3600: "1 h", 86400: "1 day"}
ROWS_PER_PAGE: Final = 25


def _column(name: str, label: str, align: str = "left") -> dict[str, Any]:
    return {"name": name, "label": label, "field": name, "align": align, "sortable": True}


RAW_COLUMNS: Final = [
    _column("ts", "Source time (UTC)"),
    _column("ingest", "Ingest time (UTC)"),
    _column("value", "Value", "right"),
    _column("quality", "Quality"),
    _column("message", "Message id"),
]
PROCESSED_COLUMNS: Final = [
    _column("ts", "Source time (UTC)"),
    _column("value", "Value", "right"),
    _column("quality", "Quality"),
    _column("flags", "Rule flags"),
    _column("message", "Message id"),
]
ROLLUP_COLUMNS: Final = [
    _column("start", "Bucket start (UTC)"),
    _column("width", "Width"),
    _column("count", "Count", "right"),
    _column("min", "Min", "right"),
    _column("max", "Max", "right"),
    _column("avg", "Avg", "right"),
    _column("flagged", "Flagged", "right"),
    _column("bad", "Bad", "right"),
]
MESSAGE_COLUMNS: Final = [
    _column("tag", "Tag"),
    _column("ts", "Source time (UTC)"),
    _column("value", "Value", "right"),
    _column("quality", "Quality"),
]
KPI_COLUMNS: Final = [
    _column("ts", "Time (UTC)"),
    _column("value", "Value", "right"),
    _column("unit", "Unit"),
    _column("source", "Source"),
    _column("inputs", "Inputs", "right"),
]

_COLORS: Final = json.dumps(QUALITY_COLORS).replace('"', "'")
_CELLS: Final = {
    "quality": (
        f"<q-badge :color=\"({_COLORS})[props.row.quality] || 'grey-6'\" "
        ':label="props.row.quality" />'
    ),
    "flags": (
        '<q-badge v-for="flag in props.row.flags" :key="flag" color="negative" '
        ':label="flag" class="q-mr-xs" />'
    ),
    "message": (
        '<a class="text-primary cursor-pointer font-mono" '
        ":data-testid=\"'message-' + props.row.message\" "
        "@click.stop=\"() => $parent.$emit('message', props.row)\">{{ props.row.message }}</a>"
    ),
    "tag": ('<a class="text-primary no-underline" :href="props.row.href">{{ props.row.tag }}</a>'),
}
# Every table shares one row template: marked rows are tinted, a click on a row emits
# `pick` with the row, a click on a message id emits `message`.
_ROW: Final = (
    "<q-tr :props=\"props\" :class=\"[props.row.mark ? 'bg-red-1' : '', "
    "props.row.pick ? 'cursor-pointer' : '']\" "
    ':data-testid="props.row.testid" '
    "@click=\"() => props.row.pick && $parent.$emit('pick', props.row)\">"
    '<q-td v-for="col in props.cols" :key="col.name" :props="props">'
    "{cells}"
    "<template v-else>{{{{ col.value }}}}</template>"
    "</q-td></q-tr>"
)


def row_template() -> str:
    """The body template every layer and lineage table uses."""
    cells = "".join(
        f"<template {'v-if' if i == 0 else 'v-else-if'}=\"col.name == '{name}'\">{cell}</template>"
        for i, (name, cell) in enumerate(_CELLS.items())
    )
    return _ROW.format(cells=cells)


def data_table(columns: list[dict[str, Any]], testid: str) -> ui.table:
    """A dense table with the shared row template."""
    table = ui.table(rows=[], columns=columns, row_key="key", pagination=ROWS_PER_PAGE)
    table.props(f"flat bordered dense wrap-cells data-testid={testid}").classes("w-full")
    table.add_slot("body", row_template())
    return table


def sample_rows(points: list[PointRead], prefix: str) -> list[dict[str, Any]]:
    """Rows of raw or processed samples, newest first; flagged samples are marked."""
    return [_sample_row(point, prefix) for point in reversed(points)]


def _sample_row(point: PointRead, prefix: str) -> dict[str, Any]:
    key = f"{from_datetime(point.ts)}-{point.message_id}"
    return {
        "key": key,
        "testid": f"{prefix}-{key}",
        "ts": format_time(point.ts),
        "ingest": format_time(point.ingest_ts),
        "value": format_value(point.value),
        "quality": point.quality,
        "flags": point.flags,
        "message": point.message_id,
        "mark": bool(point.flags) or point.quality == "bad",
        "pick": False,
    }


def rollup_rows(rollups: list[RollupRead]) -> list[dict[str, Any]]:
    """Rows of rollups, newest first; rollups with flagged or bad samples are marked."""
    return [rollup_row(rollup) for rollup in reversed(rollups)]


def rollup_row(rollup: RollupRead) -> dict[str, Any]:
    """One clickable rollup row; ns stamps travel as text (JavaScript numbers lose them)."""
    start_ns = str(from_datetime(rollup.start))
    return {
        "key": start_ns,
        "testid": f"rollup-{rollup.width_s}-{bucket_label(rollup.start)}",
        "start_ns": start_ns,
        "width_s": rollup.width_s,
        "tag": rollup.tag,
        "start": bucket_label(rollup.start),
        "width": WIDTH_LABELS.get(rollup.width_s, f"{rollup.width_s} s"),
        "count": rollup.count,
        "min": format_value(rollup.min),
        "max": format_value(rollup.max),
        "avg": format_value(rollup.avg),
        "flagged": rollup.flagged,
        "bad": rollup.bad,
        "mark": rollup.flagged > 0 or rollup.bad > 0,
        "pick": True,
    }


def layer_url(tag: str, layer: Layer) -> str:
    """The layer browser showing `tag` in `layer`."""
    return f"/layers/{quote(tag, safe='/')}?layer={layer.value}"


def message_rows(points: list[MessagePoint]) -> list[dict[str, Any]]:
    """Rows of the raw samples one message brought, each linking to its tag's raw layer."""
    return [
        {
            "key": f"{p.tag}-{from_datetime(p.ts)}",
            "testid": f"raw-{p.tag}",
            "tag": p.tag,
            "href": layer_url(p.tag, Layer.RAW),
            "ts": format_time(p.ts),
            "value": format_value(p.value),
            "quality": p.quality,
            "mark": False,
            "pick": False,
        }
        for p in points
    ]


def kpi_rows(values: list[KpiRead]) -> list[dict[str, Any]]:
    """Rows of KPI values, newest first, each clickable for its lineage."""
    return [
        {
            "key": str(from_datetime(kpi.ts)),
            "testid": f"kpi-value-{format_time(kpi.ts)}",
            "ts_ns": str(from_datetime(kpi.ts)),
            "name": kpi.name,
            "ts": format_time(kpi.ts),
            "value": format_value(kpi.value),
            "unit": kpi.unit,
            "source": kpi.source,
            "inputs": len(kpi.lineage),
            "mark": False,
            "pick": True,
        }
        for kpi in reversed(values)
    ]


def rollups_of(count: int, width_s: int) -> str:
    """A count of rollups with their width, such as ``3 rollups of 1 min``."""
    width = WIDTH_LABELS.get(width_s, f"{width_s} s")
    return f"{count} rollup of {width}" if count == 1 else f"{count} rollups of {width}"


def bucket_label(moment: datetime) -> str:
    """A bucket start to the minute, in UTC."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
