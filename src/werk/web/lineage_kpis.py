"""The KPI section of the layer browser: KPI names, a KPI's values, and their lineage."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final

import orjson
from nicegui import events, run, ui

from werk.core.clock import from_datetime
from werk.core.errors import WerkError
from werk.historian.business import kpi_read
from werk.historian.business_schemas import KpiRead
from werk.historian.layers import Layer, Table
from werk.historian.store import HistorianStore
from werk.iam.permissions import HISTORY_READ_BUSINESS
from werk.iam.scopes import Principal
from werk.web.auth import everywhere
from werk.web.formatting import count_of
from werk.web.lineage_panel import KpiStep, LayerCheck, LineagePanel
from werk.web.lineage_tables import KPI_COLUMNS, data_table, kpi_rows

KPI_VALUES_SHOWN: Final = 1_000
_EVERY_NS: Final = (0, from_datetime(datetime(2200, 1, 1, tzinfo=UTC)))
KpiScope = Callable[[list[str]], list[str]]


def kpis_in_scope(store: HistorianStore, principal: Principal, names: list[str]) -> list[str]:
    """The KPIs whose stored inputs all lie in the viewer's scope of the business layer.

    A KPI without inputs belongs to no subtree: only a viewer of the whole namespace sees it.
    """
    if everywhere(principal, HISTORY_READ_BUSINESS):
        return names
    inputs: dict[str, set[str]] = {}
    for chunk in store.scan(Table.KPIS, *_EVERY_NS, names=names):
        columns = (chunk.column("name").to_pylist(), chunk.column("lineage").to_pylist())
        for name, lineage in zip(*columns, strict=True):
            refs = orjson.loads(lineage) if lineage else []
            inputs.setdefault(name, set()).update(ref["tag"] for ref in refs)
    allows = principal.allows
    return [
        name
        for name in names
        if inputs.get(name) and all(allows(HISTORY_READ_BUSINESS, path=t) for t in inputs[name])
    ]


class KpiSection:
    """KPI names as chips; the chosen KPI's values in the page's range, each with its lineage."""

    def __init__(
        self,
        store: Callable[[], HistorianStore],
        check: LayerCheck,
        panel: LineagePanel,
        window: Callable[[], tuple[int, int]],
        scope: KpiScope,
    ) -> None:
        self._store = store
        self._check = check
        self._scope = scope
        self._panel = panel
        self._window = window
        self._name: str | None = None
        self._names: list[str] | None = None
        with ui.card().classes("w-full gap-2").props("flat bordered data-testid=kpi-section"):
            ui.label("KPIs").classes("text-lg font-medium text-grey-9")
            ui.label(
                "Values other contexts computed (OEE, energy, ...), each naming the inputs "
                "it came from. Click a value for its lineage."
            ).classes("text-sm text-grey-7")
            self._chips = ui.row().classes("items-center gap-1").props("data-testid=kpi-names")
            self._caption = ui.label().classes("text-sm text-grey-7")
            self._caption.props("data-testid=kpi-caption")
            self._table = data_table(KPI_COLUMNS, "kpi-values")
            self._table.on("pick", self._picked)
        self._table.set_visibility(False)

    async def refresh(self) -> None:
        """Reload the KPI names and the chosen KPI's values."""
        try:
            names = await run.io_bound(self._load_names)
            values = await run.io_bound(self._load_values) if self._name else None
        except WerkError as exc:
            self._caption.set_text(exc.message)
            return
        if names is not None and names != self._names:
            self._names = names
            self._show_chips()
        self._show_values(values)

    def _load_names(self) -> list[str]:
        self._check(Layer.BUSINESS)
        return self._scope(self._store().kpi_names())

    def _load_values(self) -> list[KpiRead]:
        assert self._name is not None
        start, end = self._window()
        found = self._store().kpis(self._name, start, end, KPI_VALUES_SHOWN + 1)
        return [kpi_read(k) for k in found]

    def _show_chips(self) -> None:
        self._chips.clear()
        with self._chips:
            if not self._names:
                ui.label(
                    "No KPI has been stored yet; other contexts write them with POST /api/v1/kpis."
                ).classes("text-sm text-grey-7").props("data-testid=kpi-empty")
            for name in self._names or ():
                chosen = name == self._name
                ui.chip(
                    name,
                    color="primary" if chosen else "white",
                    text_color="white" if chosen else "grey-9",
                    on_click=lambda n=name: self._choose(n),
                ).props(f"data-testid=kpi-{name} {'' if chosen else 'outline'}")

    def _show_values(self, values: list[KpiRead] | None) -> None:
        self._table.set_visibility(values is not None)
        if values is None:
            self._caption.set_text("")
            return
        more = len(values) > KPI_VALUES_SHOWN
        shown = values[:KPI_VALUES_SHOWN]
        rows = kpi_rows(shown)
        if rows != self._table.rows:
            self._table.rows = rows
        range_note = f", the first {len(shown)} of the range" if more else ""
        self._caption.set_text(f"{self._name}: {count_of(len(shown), 'value')}{range_note}")

    async def _choose(self, name: str) -> None:
        self._name = name
        self._show_chips()
        await self.refresh()

    async def _picked(self, event: events.GenericEventArguments) -> None:
        await self._panel.open(KpiStep(event.args["name"], int(event.args["ts_ns"])))
