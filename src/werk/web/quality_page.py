"""Data quality at `/quality`: rules in force, violations, silent tags, refiner, quarantine."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from nicegui import run, ui

from werk.core.errors import WerkError
from werk.historian.access import overlaps
from werk.historian.layers import Flag, Layer
from werk.historian.quality_schemas import MissingTag, QualityReport, RefinerStatus, TagViolations
from werk.historian.rules import QualityRule
from werk.iam.permissions import QUALITY_READ, QUARANTINE_READ
from werk.uns.quarantine import reason_counts
from werk.web.auth import Seat, current_seat, guarded_page
from werk.web.context import WebContext
from werk.web.formatting import count_of, format_time, format_value
from werk.web.layout import frame, section_title
from werk.web.lineage_tables import data_table, layer_url

REFRESH_S: Final = 5.0
FLAG_NAMES: Final = tuple(str(flag.name).lower() for flag in Flag)


def _column(
    name: str, label: str, align: str = "left", *, sortable: bool = False
) -> dict[str, Any]:
    return {"name": name, "label": label, "field": name, "align": align, "sortable": sortable}


_RULE_COLUMNS: Final = [
    _column("tags", "Tags"),
    _column("name", "Rule"),
    _column("unit", "Unit → canonical"),
    _column("range", "Valid range"),
    _column("rate", "Max rate", "right"),
    _column("flatline", "Flatline", "right"),
    _column("stale", "Stale after", "right"),
    _column("spike", "Spike", "right"),
]
_MISSING_COLUMNS: Final = [
    _column("tag", "Tag", sortable=True),
    _column("last", "Newest sample (UTC)", sortable=True),
    _column("stale", "Stale after", "right"),
    _column("silent", "Silent for", "right"),
]
_STATUS_FIELDS: Final = (
    ("Refiner", "refiner-running"),
    ("Refined through batch", "refiner-through"),
    ("Newest raw batch", "refiner-newest"),
    ("Lag", "refiner-lag"),
    ("Samples refined since start", "refiner-samples"),
    ("Last error", "refiner-error"),
)


def register(context: WebContext) -> None:
    """Register the page at `/quality`."""

    @guarded_page(context, "/quality", QUALITY_READ)
    async def quality() -> None:
        ui.page_title("Data quality · werk")
        with frame("Data quality"):
            view = QualityView(context, current_seat())
            await view.refresh()
            ui.timer(REFRESH_S, view.refresh)


@dataclass(frozen=True, slots=True)
class Loaded:
    """One read of everything the page shows."""

    rules: list[QualityRule]
    report: QualityReport
    quarantine: dict[str, int]


class QualityView:
    """Rules, refiner status, violations per tag, silent tags and quarantine counts."""

    def __init__(self, context: WebContext, seat: Seat) -> None:
        self._context = context
        self._seat = seat
        section_title(
            "Data quality",
            "The rules the processed layer checks, what broke them, and what werk rejected.",
        )
        self._error = ui.label().classes("text-negative").props("data-testid=quality-error")
        with ui.row().classes("w-full no-wrap items-stretch gap-4"):
            self._fields = _status_card()
            self._quarantine = ui.card().classes("grow gap-2")
            self._quarantine.props("flat bordered data-testid=quality-quarantine")
            self._quarantine.set_visibility(seat.principal.allows(QUARANTINE_READ))
        self._counts: dict[str, int] | None = None
        with _card("Quality rules in force", "quality-rules-card"):
            self._rules_note = ui.label().classes("text-sm text-grey-7")
            self._rules_note.props("data-testid=quality-rules-note")
            self._rules = _table(_RULE_COLUMNS, "quality-rules")
        with _card("Violations per tag", "quality-violations-card"):
            self._since = (
                ui.label().classes("text-sm text-grey-7").props("data-testid=quality-since")
            )
            self._violations = data_table(_violation_columns(()), "quality-violations")
        with _card("Missing and stale tags", "quality-missing-card"):
            self._missing_note = ui.label().classes("text-sm text-grey-7")
            self._missing = data_table(_MISSING_COLUMNS, "quality-missing")

    async def refresh(self) -> None:
        """Read the rules, the report and the quarantine counts and show them."""
        try:
            loaded = await run.io_bound(self._load)
        except WerkError as exc:
            self._error.set_text(exc.message)
            return
        if loaded is None:  # the app is shutting down
            return
        self._error.set_text("")
        self._show_status(loaded.report.status)
        self._show_quarantine(loaded.quarantine)
        self._show_rules(loaded.rules)
        self._show_violations(loaded.report)
        self._show_missing(loaded.report.missing)

    def _load(self) -> Loaded:
        quality = self._context.quality
        counts: dict[str, int] = {}
        if self._seat.principal.allows(QUARANTINE_READ):
            with self._context.sessions() as session:
                counts = reason_counts(session=session)
        return Loaded(
            rules=[r for r in quality.rules() if self._rule_visible(r)],
            report=self._within_scope(quality.report()),
            quarantine=counts,
        )

    def _within_scope(self, report: QualityReport) -> QualityReport:
        allows = self._seat.principal.allows
        violations = [v for v in report.violations if allows(QUALITY_READ, path=v.tag)]
        missing = [m for m in report.missing if allows(QUALITY_READ, path=m.tag)]
        return report.model_copy(update={"violations": violations, "missing": missing})

    def _rule_visible(self, rule: QualityRule) -> bool:
        scopes = self._seat.principal.namespace_filters(QUALITY_READ)
        return any(overlaps(rule.tags, f) for f in scopes)

    def _show_status(self, status: RefinerStatus) -> None:
        lag = status.newest_batch - status.refined_through
        shown = {
            "refiner-running": "running" if status.running else "stopped",
            "refiner-through": str(status.refined_through),
            "refiner-newest": str(status.newest_batch),
            "refiner-lag": "up to date" if lag <= 0 else f"{count_of(lag, 'write batch')} behind",
            "refiner-samples": str(status.refined_samples),
            "refiner-error": status.last_error or "none",
        }
        for testid, text in shown.items():
            self._fields[testid].set_text(text)
        error = self._fields["refiner-error"]
        if status.last_error:
            error.classes(add="text-negative")
        else:
            error.classes(remove="text-negative")

    def _show_quarantine(self, counts: dict[str, int]) -> None:
        if counts == self._counts:
            return
        self._counts = counts
        self._quarantine.clear()
        with self._quarantine:
            ui.label("Quarantine").classes("text-lg font-medium text-grey-9")
            total = sum(counts.values())
            ui.label(f"{count_of(total, 'message')} rejected by reason").classes(
                "text-sm text-grey-7"
            ).props("data-testid=quarantine-total")
            with ui.row().classes("items-center gap-1"):
                for reason, count in sorted(counts.items(), key=lambda item: -item[1]):
                    ui.chip(f"{reason} · {count}", color="white", text_color="grey-9").props(
                        f"outline dense data-testid=quarantine-reason-{reason}"
                    )
            ui.link("Open the quarantine", "/quarantine").classes("text-sm text-primary").props(
                "data-testid=quarantine-link"
            )

    def _show_rules(self, rules: list[QualityRule]) -> None:
        self._rules_note.set_text(
            "The first rule whose tag filter matches a tag applies to it."
            if rules
            else "No quality rules are configured: set quality_rules_file "
            "(WERK_QUALITY_RULES_FILE) to a TOML file of [[rules]] tables."
        )
        rows = [_rule_row(index, rule) for index, rule in enumerate(rules)]
        if rows != self._rules.rows:
            self._rules.rows = rows
        self._rules.set_visibility(bool(rows))

    def _show_violations(self, report: QualityReport) -> None:
        self._since.set_text(
            f"Flagged processed samples since {format_time(report.since)} (UTC); "
            "click a tag to see its processed samples."
            if report.violations
            else f"No processed sample broke a rule since {format_time(report.since)} (UTC)."
        )
        names = _flag_columns(report.violations)
        columns = _violation_columns(names)
        if columns != self._violations.columns:
            self._violations.columns = columns
        rows = [_violation_row(v, names) for v in report.violations]
        if rows != self._violations.rows:
            self._violations.rows = rows
        self._violations.set_visibility(bool(rows))

    def _show_missing(self, missing: list[MissingTag]) -> None:
        self._missing_note.set_text(
            f"{count_of(len(missing), 'tag')} sent nothing for longer than its rule's stale limit."
            if missing
            else "Every tag with a stale limit sent a sample within it."
        )
        longest = sorted(missing, key=lambda m: -m.silent_s)
        rows = [_missing_row(m) for m in longest]
        if rows != self._missing.rows:
            self._missing.rows = rows
        self._missing.set_visibility(bool(rows))


def _card(title: str, testid: str) -> ui.card:
    with ui.card().classes("w-full gap-2").props(f"flat bordered data-testid={testid}") as card:
        ui.label(title).classes("text-lg font-medium text-grey-9")
    return card


def _status_card() -> dict[str, ui.label]:
    fields: dict[str, ui.label] = {}
    with (
        ui.card()
        .classes("w-[28rem] shrink-0 gap-2")
        .props("flat bordered data-testid=refiner-status")
    ):
        ui.label("Refiner").classes("text-lg font-medium text-grey-9")
        with ui.grid(columns="auto 1fr").classes("w-full gap-x-4 gap-y-1 text-sm"):
            for label, testid in _STATUS_FIELDS:
                ui.label(label).classes("text-grey-7")
                fields[testid] = ui.label().classes("break-all").props(f"data-testid={testid}")
    return fields


def _table(columns: list[dict[str, Any]], testid: str) -> ui.table:
    table = ui.table(rows=[], columns=columns, row_key="key")
    table.props(f"flat bordered dense wrap-cells data-testid={testid}").classes("w-full")
    return table


def _rule_row(index: int, rule: QualityRule) -> dict[str, Any]:
    return {
        "key": index,
        "tags": rule.tags,
        "name": rule.name or rule.description or "—",
        "unit": _units(rule),
        "range": _range(rule.min, rule.max),
        "rate": "—" if rule.max_rate is None else f"{format_value(rule.max_rate)}/s",
        "flatline": _flatline(rule),
        "stale": "—" if rule.stale_s is None else f"{format_value(rule.stale_s)} s",
        "spike": "—" if rule.spike is None else format_value(rule.spike),
    }


def _units(rule: QualityRule) -> str:
    if rule.unit is None and rule.canonical_unit is None:
        return "—"
    if rule.canonical_unit is None or rule.canonical_unit == rule.unit:
        return str(rule.unit)
    return f"{rule.unit or 'as published'} → {rule.canonical_unit}"


def _range(low: float | None, high: float | None) -> str:
    if low is None and high is None:
        return "—"
    if low is None:
        return f"≤ {format_value(high)}"
    if high is None:
        return f"≥ {format_value(low)}"
    return f"{format_value(low)} … {format_value(high)}"


def _flatline(rule: QualityRule) -> str:
    if rule.flatline_s is None:
        return "—"
    tolerance = f" ± {format_value(rule.flatline_tolerance)}" if rule.flatline_tolerance else ""
    return f"{format_value(rule.flatline_s)} s{tolerance}"


def _flag_columns(violations: list[TagViolations]) -> tuple[str, ...]:
    """The flag names that occur, in flag order; names the page does not know go last."""
    seen = {name for v in violations for name, count in v.counts.items() if count}
    return (*(n for n in FLAG_NAMES if n in seen), *sorted(seen - set(FLAG_NAMES)))


def _violation_columns(names: tuple[str, ...]) -> list[dict[str, Any]]:
    return [
        _column("tag", "Tag", sortable=True),
        _column("total", "Flagged samples", "right", sortable=True),
        *(_column(name, name, "right", sortable=True) for name in names),
    ]


def _violation_row(violations: TagViolations, names: tuple[str, ...]) -> dict[str, Any]:
    counts = {name: violations.counts.get(name, 0) for name in names}
    return {
        "key": violations.tag,
        "testid": f"violation-{violations.tag}",
        "tag": violations.tag,
        "href": layer_url(violations.tag, Layer.PROCESSED),
        "total": violations.total,
        **counts,
        "mark": False,
        "pick": False,
    }


def _missing_row(missing: MissingTag) -> dict[str, Any]:
    return {
        "key": missing.tag,
        "testid": f"missing-{missing.tag}",
        "tag": missing.tag,
        "href": layer_url(missing.tag, Layer.RAW),
        "last": format_time(missing.last_ts) if missing.last_ts else "never",
        "stale": f"{format_value(missing.stale_s)} s",
        "silent": _duration(missing.silent_s),
        "mark": False,
        "pick": False,
    }


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86_400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"
