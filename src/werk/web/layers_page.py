"""The layer browser at `/layers/{tag}`: raw, processed and business data of a tag with lineage."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final, Literal
from urllib.parse import quote

from nicegui import events, run, ui

from werk.core.clock import NS_PER_S, now_ns
from werk.core.errors import Forbidden, NotFound, WerkError
from werk.historian.access import permission
from werk.historian.business import rollup_read
from werk.historian.business_schemas import RollupRead
from werk.historian.layers import Layer
from werk.historian.rules import filter_matches
from werk.historian.schemas import HistoryQuery, HistoryRead
from werk.historian.service import history, parse_message_id
from werk.web.auth import Seat, current_seat, guarded_page
from werk.web.context import WebContext
from werk.web.formatting import count_of
from werk.web.layout import HISTORY_ANY, empty_state, frame, section_title
from werk.web.lineage_chart import LayerChart
from werk.web.lineage_kpis import KpiSection, kpis_in_scope
from werk.web.lineage_panel import LayerCheck, LineagePanel, MessageStep, RollupStep, Step
from werk.web.lineage_tables import (
    PROCESSED_COLUMNS,
    RAW_COLUMNS,
    ROLLUP_COLUMNS,
    data_table,
    rollup_rows,
    rollups_of,
    sample_rows,
)

Last = Literal["1h", "24h", "7d", "30d"]
RANGES_S: Final[dict[str, int]] = {"1h": 3600, "24h": 86_400, "7d": 7 * 86_400, "30d": 30 * 86_400}
RANGE_LABELS: Final = {"1h": "Last 1 h", "24h": "Last 24 h", "7d": "Last 7 d", "30d": "Last 30 d"}
ROLLUP_WIDTH_S: Final = {"1h": 60, "24h": 3600, "7d": 3600, "30d": 86_400}
POINTS_SHOWN: Final = 5_000
TAGS_LISTED: Final = 30
SEARCHED: Final = 10_000
REFRESH_S: Final = 5.0
# Devices' clocks run ahead of ours by a little; their newest samples still belong in the range.
_CLOCK_SKEW_NS: Final = 60 * NS_PER_S
_LAYER_LABELS: Final = {Layer.RAW: "Raw", Layer.PROCESSED: "Processed", Layer.BUSINESS: "Business"}
_EXPLAIN: Final = {
    Layer.RAW: "Samples as received, each with the id of the message that brought it.",
    Layer.PROCESSED: "Samples in canonical units, checked against the quality rules: "
    "flagged samples are kept and marked in red.",
    Layer.BUSINESS: "Rollups of the processed samples (bad quality left out). "
    "Click a rollup for its lineage down to the raw messages.",
}
_COLUMNS: Final = {
    Layer.RAW: RAW_COLUMNS,
    Layer.PROCESSED: PROCESSED_COLUMNS,
    Layer.BUSINESS: ROLLUP_COLUMNS,
}


def register(context: WebContext) -> None:
    """Register the pages at `/layers` and `/layers/{tag}`."""

    @guarded_page(context, "/layers", HISTORY_ANY)
    async def layers(layer: Layer = Layer.RAW, last: Last = "1h") -> None:
        await _layers(context, Choice("", layer, last))

    @guarded_page(context, "/layers/{tag:path}", HISTORY_ANY)
    async def layers_of_tag(tag: str, layer: Layer = Layer.RAW, last: Last = "1h") -> None:
        await _layers(context, Choice(tag, layer, last))


@dataclass(slots=True)
class Choice:
    """The tag, layer and range the browser shows."""

    tag: str
    layer: Layer
    last: str

    def url(self, tag: str | None = None) -> str:
        """The address of this choice, or of the same layer and range for another tag."""
        path = quote(self.tag if tag is None else tag, safe="/")
        return f"/layers/{path}?layer={self.layer.value}&last={self.last}"

    def window(self) -> tuple[int, int]:
        """The nanosecond range to read, ending now."""
        end = now_ns() + _CLOCK_SKEW_NS
        return end - _CLOCK_SKEW_NS - RANGES_S[self.last] * NS_PER_S, end


async def _layers(context: WebContext, choice: Choice) -> None:
    title = choice.tag.rsplit("/", 1)[-1] if choice.tag else "Layers"
    ui.page_title(f"{title} · werk")
    seat = current_seat()

    def check(layer: Layer) -> None:
        check_layer(seat, layer, choice.tag)

    with frame("Layers"):
        view = LayersView(context, seat, check, choice)
        await view.refresh()
        ui.timer(REFRESH_S, view.refresh)


class LayersView:
    """The tag picker, the chosen layer of the tag, the lineage panel and the KPIs."""

    def __init__(self, context: WebContext, seat: Seat, check: LayerCheck, choice: Choice) -> None:
        self._context = context
        self._choice = choice
        section_title(
            "Layers",
            "Raw, processed and business data of a tag, traced back to the messages it came from.",
        )
        with ui.row().classes("w-full no-wrap items-start gap-4"):
            picker = TagPicker(context, seat, choice)
            with ui.column().classes("grow min-w-0 gap-4"):
                self._layer = (
                    LayerCard(context, check, choice, self._open, picker.follow_choice)
                    if choice.tag
                    else None
                )
                if self._layer is None:
                    _pick_a_tag()
                self._panel = LineagePanel(lambda: context.store, check)
                self._kpis = KpiSection(
                    lambda: context.store, check, self._panel, choice.window,
                    lambda names: kpis_in_scope(context.store, seat.principal, names),
                )  # fmt: skip

    async def refresh(self) -> None:
        """Reload the shown layer and the KPIs."""
        if self._layer is not None:
            await self._layer.refresh()
        await self._kpis.refresh()

    async def _open(self, step: Step) -> None:
        await self._panel.open(step)


def check_layer(seat: Seat, layer: Layer, tag: str) -> None:
    """Refuse a read of `layer` the viewer may not make; a tag outside its scope is missing."""
    needed = permission(layer)
    if not seat.principal.allows(needed):
        raise Forbidden(
            f"reading the {layer.value} layer needs the permission {needed!r}",
            code="layer_forbidden",
            layer=layer.value,
        )
    if tag and not seat.principal.allows(needed, path=tag):
        raise NotFound(f"the historian has no samples of {tag!r}", path=tag)


def _pick_a_tag() -> None:
    empty_state(
        "layers",
        "Pick a tag",
        "Search for a tag on the left to see its raw samples, its processed samples with "
        "their quality flags, and its business rollups.",
        "layers-empty",
    )


class TagPicker:
    """A search over the namespace; every match links to the browser for that tag."""

    def __init__(self, context: WebContext, seat: Seat, choice: Choice) -> None:
        self._context = context
        self._seat = seat
        self._choice = choice
        self._listed: list[tuple[str, str]] | None = None  # (path, link) shown
        self._text = ""
        with ui.card().classes("w-80 shrink-0 gap-2").props("flat bordered"):
            search = ui.input(placeholder="Search tags by words in their path")
            search.props("outlined dense clearable debounce=250 data-testid=layer-tag-search")
            search.classes("w-full").on_value_change(self._search)
            with search.add_slot("prepend"):
                ui.icon("search")
            self._count = ui.label().classes("text-xs text-grey-7")
            self._count.props("data-testid=layer-tag-count")
            self._list = ui.column().classes("w-full gap-0 max-h-[70vh] overflow-auto")
            self._list.props("data-testid=layer-tag-results")
        self._show("")

    def _search(self, event: events.ValueChangeEventArguments[Any]) -> None:
        self._text = (event.value or "").strip()
        self._show(self._text)

    def follow_choice(self) -> None:
        """Point the listed links at the layer and range chosen now."""
        self._show(self._text)

    def _show(self, text: str) -> None:
        principal = self._seat.principal
        found = [
            state
            for state in self._context.namespace.search(text, limit=SEARCHED)
            if any(principal.allows(p, path=state.path) for p in HISTORY_ANY)
        ][: TAGS_LISTED + 1]
        more = len(found) > TAGS_LISTED
        self._count.set_text(
            f"the first {TAGS_LISTED} matching tags" if more else count_of(len(found), "tag")
        )
        links = [(state.path, self._choice.url(state.path)) for state in found[:TAGS_LISTED]]
        if links == self._listed:
            return  # the same links stay: one being clicked is not replaced under the pointer
        self._listed = links
        self._list.clear()
        with self._list:
            for path, url in links:
                _tag_link(path, url, path == self._choice.tag)


def _tag_link(path: str, url: str, chosen: bool) -> None:
    node, _, name = path.rpartition("/")
    look = "bg-blue-1" if chosen else "hover:bg-grey-2"
    with ui.link(target=url).classes(f"w-full px-2 py-1 rounded no-underline {look}") as link:
        ui.label(name).classes("text-sm font-medium text-grey-9")
        ui.label(node).classes("text-xs text-grey-6 break-all")
    link.props(f"data-testid=pick-{path}")


@dataclass(slots=True)
class Shown:
    """What one read of a layer found."""

    samples: HistoryRead | None = None
    rollups: list[RollupRead] = field(default_factory=list)
    window: tuple[int, int] = (0, 0)


class LayerCard:
    """One tag in one layer over one range: trend and table, rollups open their lineage."""

    def __init__(
        self,
        context: WebContext,
        check: LayerCheck,
        choice: Choice,
        open_lineage: Callable[[Step], Awaitable[None]],
        on_choice: Callable[[], None],
    ) -> None:
        """`on_choice` is called after the layer or range changed (the tag links follow)."""
        self._context = context
        self._check = check
        self._choice = choice
        self._open = open_lineage
        self._on_choice = on_choice
        with ui.card().classes("w-full gap-2").props("flat bordered data-testid=layer-card"):
            self._build_header()
            self._explain = ui.label().classes("text-sm text-grey-7")
            self._explain.props("data-testid=layer-explain")
            self._caption = ui.label().classes("text-sm font-medium text-grey-8")
            self._caption.props("data-testid=layer-caption")
            self._chart = LayerChart(self._rollup_clicked)
            self._table = data_table(_COLUMNS[choice.layer], "layer-table")
            self._table.on("pick", self._rollup_picked)
            self._table.on("message", self._message_picked)

    def _build_header(self) -> None:
        choice = self._choice
        with ui.row().classes("w-full items-center justify-between"):
            with ui.column().classes("gap-0 min-w-0"):
                ui.label(choice.tag.rsplit("/", 1)[-1]).classes(
                    "text-lg font-medium text-grey-9"
                ).props("data-testid=layer-tag")
                ui.link(choice.tag, f"/tag/{quote(choice.tag, safe='/')}").classes(
                    "text-xs text-grey-7 break-all"
                )
            with ui.row().classes("items-center gap-2"):
                ui.toggle(
                    {layer.value: label for layer, label in _LAYER_LABELS.items()},
                    value=choice.layer.value,
                    on_change=self._layer_chosen,
                ).props("no-caps dense data-testid=layer-choice")
                ui.toggle(
                    dict(RANGE_LABELS), value=choice.last, on_change=self._range_chosen
                ).props("no-caps dense data-testid=range-choice")

    async def refresh(self) -> None:
        """Read the layer again and show what changed."""
        self._explain.set_text(_EXPLAIN[self._choice.layer])
        asked = (self._choice.layer, self._choice.last)
        try:
            shown = await run.io_bound(self._read)
        except NotFound:
            self._show_nothing(f"The historian has no samples of {self._choice.tag} yet.")
            return
        except WerkError as exc:
            self._show_nothing(exc.message)
            return
        # A read the user's newer choice overtook is dropped, not shown under the new columns.
        if shown is not None and asked == (self._choice.layer, self._choice.last):
            self._show(shown)

    def _read(self) -> Shown:
        choice = self._choice
        self._check(choice.layer)
        window = choice.window()
        if choice.layer is Layer.BUSINESS:
            return Shown(rollups=self._read_rollups(window), window=window)
        query = HistoryQuery(
            tag=choice.tag,
            layer=choice.layer,
            start_ns=window[0],
            end_ns=window[1],
            limit=POINTS_SHOWN,
            newest=True,
        )
        return Shown(samples=history(store=self._context.store, query=query), window=window)

    def _read_rollups(self, window: tuple[int, int]) -> list[RollupRead]:
        store = self._context.store
        if not store.knows(self._choice.tag):
            raise NotFound(f"the historian has no samples of {self._choice.tag!r}")
        width_ns = self._width_s * NS_PER_S
        start = window[0] - window[0] % width_ns
        return [
            rollup_read(r) for r in store.rollups(self._choice.tag, self._width_s, start, window[1])
        ]

    @property
    def _width_s(self) -> int:
        return ROLLUP_WIDTH_S[self._choice.last]

    def _show(self, shown: Shown) -> None:
        if shown.samples is not None:
            rows = sample_rows(shown.samples.points, self._choice.layer.value)
            caption = _samples_caption(shown.samples)
        else:
            rows = rollup_rows(shown.rollups)
            caption = _rollups_caption(shown.rollups, self._width_s, self._choice.last)
        self._caption.set_text(caption)
        self._caption.classes(remove="text-negative")
        if rows == self._table.rows:
            return
        self._table.rows = rows
        unit = self._unit()
        if shown.samples is not None:
            self._chart.show_samples(shown.samples.points, shown.window, unit)
        else:
            self._chart.show_rollups(shown.rollups, shown.window, unit)
        self._chart.set_visibility(bool(rows))

    def _show_nothing(self, why: str) -> None:
        self._caption.set_text(why)
        self._caption.classes(add="text-negative")
        self._table.rows = []
        self._chart.set_visibility(False)

    def _unit(self) -> str:
        """The unit of the shown values: the rule's canonical unit past the raw layer."""
        tag = self._choice.tag
        if self._choice.layer is not Layer.RAW:
            rules = self._context.quality.rules()
            rule = next((r for r in rules if filter_matches(r.tags, tag)), None)
            if rule is not None and rule.target_unit:
                return rule.target_unit
        try:
            return self._context.namespace.get(tag).unit or ""
        except NotFound:
            return ""

    async def _layer_chosen(self, event: events.ValueChangeEventArguments[Any]) -> None:
        self._choice.layer = Layer(event.value)
        await self._reload()

    async def _range_chosen(self, event: events.ValueChangeEventArguments[Any]) -> None:
        self._choice.last = str(event.value)
        await self._reload()

    async def _reload(self) -> None:
        ui.navigate.history.replace(self._choice.url())
        self._on_choice()
        self._table.columns = _COLUMNS[self._choice.layer]
        self._table.rows = []
        await self.refresh()

    async def _rollup_clicked(self, start_ns: int) -> None:
        await self._open(RollupStep(self._choice.tag, self._width_s, start_ns))

    async def _rollup_picked(self, event: events.GenericEventArguments) -> None:
        row: dict[str, Any] = event.args
        await self._open(RollupStep(row["tag"], int(row["width_s"]), int(row["start_ns"])))

    async def _message_picked(self, event: events.GenericEventArguments) -> None:
        await self._open(MessageStep(parse_message_id(event.args["message"])))


def _samples_caption(read: HistoryRead) -> str:
    noun = f"{read.layer.value} sample"
    shown = count_of(len(read.points), noun)
    if read.truncated:
        shown = f"the newest {shown} (more in the range)"
    if read.layer is Layer.PROCESSED:
        flagged = sum(bool(p.flags) for p in read.points)
        shown += f", {flagged} flagged"
    return shown


def _rollups_caption(rollups: list[RollupRead], width_s: int, last: str) -> str:
    flagged = sum(r.flagged > 0 for r in rollups)
    return (
        f"{rollups_of(len(rollups), width_s)} over the {RANGE_LABELS[last].lower()}, "
        f"{flagged} with flagged samples"
    )
