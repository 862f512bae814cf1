"""The lineage panel: from a rollup or KPI value down to the raw samples of a message."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from nicegui import events, run, ui

from werk.core.clock import NS_PER_S, from_datetime, to_datetime
from werk.core.errors import WerkError
from werk.historian import business
from werk.historian.business_schemas import (
    InputLineage,
    KpiLineage,
    MessageLineage,
    RollupLineage,
    RollupRead,
)
from werk.historian.layers import Layer
from werk.historian.service import message_hex, parse_message_id
from werk.historian.store import HistorianStore
from werk.web.formatting import count_of, format_time, format_value
from werk.web.lineage_tables import (
    MESSAGE_COLUMNS,
    PROCESSED_COLUMNS,
    RAW_COLUMNS,
    ROLLUP_COLUMNS,
    WIDTH_LABELS,
    bucket_label,
    data_table,
    layer_url,
    message_rows,
    rollup_rows,
    rollups_of,
    sample_rows,
)

LayerCheck = Callable[[Layer], None]
Lineage = RollupLineage | KpiLineage | MessageLineage
_MESSAGES_SHOWN: Final = 50


@dataclass(frozen=True, slots=True)
class RollupStep:
    """A rollup of one tag, width and bucket."""

    tag: str
    width_s: int
    start_ns: int

    @property
    def label(self) -> str:
        """How the breadcrumb names the step."""
        width = WIDTH_LABELS.get(self.width_s, f"{self.width_s} s")
        return f"{width} · {bucket_label(to_datetime(self.start_ns))}"


@dataclass(frozen=True, slots=True)
class KpiStep:
    """One stored value of a KPI."""

    name: str
    ts_ns: int

    @property
    def label(self) -> str:
        """How the breadcrumb names the step."""
        return f"{self.name.rsplit('/', 1)[-1]} · {format_time(to_datetime(self.ts_ns))}"


@dataclass(frozen=True, slots=True)
class MessageStep:
    """The raw samples one message brought."""

    msg_id: int

    @property
    def label(self) -> str:
        """How the breadcrumb names the step."""
        return f"message {message_hex(self.msg_id)}"


Step = RollupStep | KpiStep | MessageStep


def load_lineage(store: HistorianStore, step: Step, check: LayerCheck) -> Lineage:
    """Read what the step came from, refusing layers the reader may not see."""
    if isinstance(step, MessageStep):
        check(Layer.RAW)
        return business.message_lineage(store, step.msg_id)
    check(Layer.BUSINESS)
    if isinstance(step, RollupStep):
        check(Layer.PROCESSED)
        return business.rollup_lineage(store, step.tag, step.width_s, step.start_ns)
    found = business.kpi_lineage(store, step.name, step.ts_ns)
    for item in found.inputs:
        check(item.ref.layer)
    return found


class LineagePanel:
    """A card that walks a lineage step by step, with a breadcrumb back up."""

    def __init__(self, store: Callable[[], HistorianStore], check: LayerCheck) -> None:
        self._store = store
        self._check = check
        self._steps: list[Step] = []
        with (
            ui.card()
            .classes("w-full gap-2")
            .props("flat bordered data-testid=lineage-panel") as card
        ):
            with ui.row().classes("w-full items-center justify-between"):
                ui.label("Lineage").classes("text-lg font-medium text-grey-9")
                ui.button(icon="close", on_click=self.close).props(
                    "flat round dense data-testid=lineage-close"
                )
            self._crumbs = ui.row().classes("items-center gap-1 text-sm")
            self._crumbs.props("data-testid=lineage-breadcrumb")
            self._body = ui.column().classes("w-full gap-2").props("data-testid=lineage-body")
        self._card = card
        card.set_visibility(False)

    async def open(self, step: Step) -> None:
        """Start a new walk at `step`."""
        self._steps = [step]
        await self._render()

    async def push(self, step: Step) -> None:
        """Go one step further down."""
        self._steps.append(step)
        await self._render()

    async def back_to(self, index: int) -> None:
        """Return to an earlier step of the breadcrumb."""
        del self._steps[index + 1 :]
        await self._render()

    def close(self) -> None:
        """Hide the panel."""
        self._steps = []
        self._card.set_visibility(False)

    async def _render(self) -> None:
        self._card.set_visibility(True)
        self._show_crumbs()
        step = self._steps[-1]
        self._body.clear()
        try:
            found = await run.io_bound(load_lineage, self._store(), step, self._check)
        except WerkError as exc:
            with self._body:
                ui.label(exc.message).classes("text-negative").props("data-testid=lineage-error")
            return
        # None: the app is shutting down; another step: the user moved on while this loaded.
        if found is None or self._steps[-1:] != [step]:
            return
        with self._body:
            self._show(found)
        ui.run_javascript(f"getHtmlElement({self._card.id}).scrollIntoView({{block: 'nearest'}})")

    def _show_crumbs(self) -> None:
        self._crumbs.clear()
        with self._crumbs:
            last = len(self._steps) - 1
            for index, step in enumerate(self._steps):
                if index:
                    ui.icon("chevron_right").classes("text-grey-5")
                if index == last:
                    ui.label(step.label).classes("font-semibold text-grey-9")
                    continue
                ui.button(step.label, on_click=lambda i=index: self.back_to(i)).props(
                    f"flat dense no-caps color=primary data-testid=lineage-crumb-{index}"
                )

    def _show(self, found: Lineage) -> None:
        if isinstance(found, RollupLineage):
            self._show_rollup(found)
        elif isinstance(found, KpiLineage):
            self._show_kpi(found)
        else:
            self._show_message(found)

    def _show_rollup(self, found: RollupLineage) -> None:
        _summary(_rollup_summary(found.rollup))
        if found.parts:
            merged = rollups_of(len(found.parts), found.parts[0].width_s)
            self._rollups(found.parts, f"The {merged} it merges")
        if found.samples or not found.parts:
            self._samples(
                found, Layer.PROCESSED, "in the bucket; bad ones are left out of the aggregates"
            )
        self._messages(found.messages)

    def _show_kpi(self, found: KpiLineage) -> None:
        kpi = found.kpi
        _summary(
            f"{kpi.name} = {format_value(kpi.value)} {kpi.unit} at {format_time(kpi.ts)}, "
            f"computed by {kpi.source}"
        )
        if not found.inputs:
            ui.label("This value names no inputs.").classes("text-sm text-grey-7")
        for index, item in enumerate(found.inputs):
            self._input(index, item)

    def _input(self, index: int, item: InputLineage) -> None:
        ref = item.ref
        with (
            ui.row()
            .classes("items-baseline gap-2 q-mt-sm")
            .props(f"data-testid=lineage-input-{index}")
        ):
            ui.label(f"Input {index + 1}:").classes("text-sm font-medium text-grey-9")
            ui.link(ref.tag, layer_url(ref.tag, ref.layer)).classes("text-sm text-primary")
            ui.label(
                f"{ref.layer.value} layer, {format_time(ref.start)} to {format_time(ref.end)}"
            ).classes("text-sm text-grey-7")
        if item.rollups:
            width_s = item.rollups[0].width_s
            self._rollups(
                item.rollups, f"The {rollups_of(len(item.rollups), width_s)} in the range"
            )
        elif ref.layer is Layer.BUSINESS:
            ui.label("No rollups in the range.").classes("text-sm text-grey-7")
        else:
            self._samples(item, ref.layer, "in the range")
        self._messages(item.messages)

    def _show_message(self, found: MessageLineage) -> None:
        ingested = f" ingested at {format_time(found.ingest_ts)}" if found.ingest_ts else ""
        _summary(
            f"Message {found.message_id}{ingested} brought "
            f"{count_of(len(found.points), 'raw sample')}"
        )
        table = data_table(MESSAGE_COLUMNS, "lineage-raw")
        table.rows = message_rows(found.points)

    def _rollups(self, rollups: list[RollupRead], title: str) -> None:
        ui.label(title).classes("text-sm font-medium text-grey-8")
        table = data_table(ROLLUP_COLUMNS, "lineage-rollups")
        table.rows = rollup_rows(rollups)
        table.on("pick", self._picked_rollup)

    def _samples(self, found: RollupLineage | InputLineage, layer: Layer, where: str) -> None:
        more = ", the first of more" if found.truncated else ""
        noun = f"{layer.value} sample"
        title = f"The {count_of(len(found.samples), noun)} {where}{more}"
        ui.label(title).classes("text-sm font-medium text-grey-8")
        columns = RAW_COLUMNS if layer is Layer.RAW else PROCESSED_COLUMNS
        table = data_table(columns, "lineage-samples")
        table.rows = sample_rows(found.samples, "sample")
        table.on("message", self._picked_message)

    def _messages(self, messages: list[str]) -> None:
        if not messages:
            return
        with ui.row().classes("items-center gap-1").props("data-testid=lineage-messages"):
            ui.label("From messages").classes("text-sm text-grey-7 q-mr-sm")
            for message in messages[:_MESSAGES_SHOWN]:
                ui.chip(
                    message,
                    icon="mail",
                    on_click=lambda m=message: self.push(MessageStep(parse_message_id(m))),
                ).props(f"outline dense data-testid=lineage-message-{message}")
            if len(messages) > _MESSAGES_SHOWN:
                ui.label(f"and {len(messages) - _MESSAGES_SHOWN} more").classes("text-sm")

    async def _picked_rollup(self, event: events.GenericEventArguments) -> None:
        row: dict[str, Any] = event.args
        await self.push(RollupStep(row["tag"], int(row["width_s"]), int(row["start_ns"])))

    async def _picked_message(self, event: events.GenericEventArguments) -> None:
        await self.push(MessageStep(parse_message_id(event.args["message"])))


def _summary(text: str) -> None:
    ui.label(text).classes("text-sm text-grey-9").props("data-testid=lineage-summary")


def _rollup_summary(rollup: RollupRead) -> str:
    width = WIDTH_LABELS.get(rollup.width_s, f"{rollup.width_s} s")
    end = to_datetime(from_datetime(rollup.start) + rollup.width_s * NS_PER_S)
    return (
        f"{width} rollup of {rollup.tag} from {bucket_label(rollup.start)} to "
        f"{bucket_label(end)}: {count_of(rollup.count, 'sample')}, min {format_value(rollup.min)}, "
        f"max {format_value(rollup.max)}, avg {format_value(rollup.avg)}, "
        f"{rollup.flagged} flagged, {rollup.bad} bad left out"
    )
