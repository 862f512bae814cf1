"""The quarantine at `/quarantine`: rejected messages with their reasons."""

from __future__ import annotations

from typing import Any, Final

from nicegui import run, ui

from werk.iam.permissions import QUARANTINE_READ
from werk.uns.access import Keep, place, quarantine_slice
from werk.uns.schemas import QuarantinePage, QuarantineRead
from werk.uns.service import quarantine_page, quarantine_read
from werk.web.auth import Seat, current_seat, everywhere, guarded_page
from werk.web.context import WebContext
from werk.web.formatting import count_of, format_size, format_time
from werk.web.layout import empty_state, frame, section_title

RECORDS_SHOWN: Final = 100
REFRESH_S: Final = 5.0
_PREVIEW_CHARS: Final = 160
_COLUMNS: Final[list[dict[str, Any]]] = [
    {"name": "received", "label": "Received (UTC)", "field": "received", "align": "left"},
    {"name": "topic", "label": "Topic", "field": "topic", "align": "left"},
    {"name": "reason", "label": "Reason", "field": "reason", "align": "left"},
    {"name": "detail", "label": "Detail", "field": "detail", "align": "left"},
    {"name": "size", "label": "Size", "field": "size", "align": "right"},
    {"name": "payload", "label": "Payload preview", "field": "payload", "align": "left"},
]
_REASON_CELL: Final = (
    '<q-td :props="props"><q-badge outline color="negative" :label="props.value" /></q-td>'
)
_CODE_CELL: Final = (
    '<q-td :props="props">'
    '<code class="text-xs bg-grey-2 q-pa-xs rounded-borders break-all">{{ props.value }}</code>'
    "</q-td>"
)


def register(context: WebContext) -> None:
    """Register the page at `/quarantine`."""

    @guarded_page(context, "/quarantine", QUARANTINE_READ)
    async def quarantine() -> None:
        ui.page_title("Quarantine · werk")
        with frame("Quarantine"):
            view = QuarantineView(context, current_seat())
            await view.refresh()
            ui.timer(REFRESH_S, view.refresh)


class QuarantineView:
    """Counts per reason as filter chips and the newest records."""

    def __init__(self, context: WebContext, seat: Seat) -> None:
        self._context = context
        self._seat = seat
        self._reason: str | None = None
        self._shown_chips: tuple[str | None, dict[str, int]] | None = None
        with ui.row().classes("w-full items-end justify-between"):
            section_title("Quarantine", "Messages werk did not accept, each with the exact reason.")
            ui.button("Refresh", icon="refresh", on_click=self.refresh).props(
                "outline no-caps data-testid=quarantine-refresh"
            )
        self._chips = ui.row().classes("items-center gap-1").props("data-testid=quarantine-reasons")
        self._empty = empty_state(
            "verified",
            "Nothing in quarantine",
            "Every message that arrived matched its topic and payload contract.",
            "quarantine-empty",
        )
        with ui.card().classes("w-full gap-1").props("flat bordered") as self._card:
            self._count = ui.label().classes("text-sm text-grey-7")
            self._count.props("data-testid=quarantine-count")
            self._table = ui.table(rows=[], columns=_COLUMNS, row_key="id")
            self._table.props("flat dense wrap-cells data-testid=quarantine-table")
            self._table.classes("w-full")
            self._table.add_slot("body-cell-reason", _REASON_CELL)
            self._table.add_slot("body-cell-topic", _CODE_CELL)
            self._table.add_slot("body-cell-payload", _CODE_CELL)

    async def refresh(self) -> None:
        """Load the counts and the newest records of the chosen reason."""
        page = await run.io_bound(self._load, self._reason)
        if page is None:
            return
        self._show_chips(page.reasons)
        self._empty.set_visibility(page.total == 0 and self._reason is None)
        self._card.set_visibility(page.total > 0 or self._reason is not None)
        self._table.rows = [_row(record) for record in page.items]
        self._count.set_text(_count_text(page, self._reason))

    def _load(self, reason: str | None) -> QuarantinePage:
        keep = self._keep()
        with self._context.sessions() as session:
            if keep is None:
                return quarantine_page(
                    session=session, reason=reason, limit=RECORDS_SHOWN, before_id=None
                )
            found = quarantine_slice(
                session=session, keep=keep, reason=reason, limit=RECORDS_SHOWN, before_id=None
            )
            items = [quarantine_read(r) for r in found.records]
            return QuarantinePage(items=items, total=found.total, reasons=found.reasons)

    def _keep(self) -> Keep | None:
        """A test of topics in the viewer's scope; None when it sees the whole quarantine."""
        principal, root = self._seat.principal, self._context.root
        if everywhere(principal, QUARANTINE_READ):
            return None

        def keep(topic: str) -> bool:
            path = place(topic, root)
            return path is not None and principal.allows(QUARANTINE_READ, path=path)

        return keep

    def _show_chips(self, reasons: dict[str, int]) -> None:
        # Rebuilding chips that did not change would swap them under a user's click.
        if self._shown_chips == (self._reason, reasons):
            return
        self._shown_chips = (self._reason, dict(reasons))
        self._chips.clear()
        with self._chips:
            ui.label("Reason").classes("text-sm text-grey-7 q-mr-sm")
            self._chip("all", sum(reasons.values()), None)
            for reason, count in sorted(reasons.items()):
                self._chip(reason, count, reason)

    def _chip(self, label: str, count: int, reason: str | None) -> None:
        chosen = reason == self._reason
        chip = ui.chip(
            f"{label} · {count}",
            color="primary" if chosen else "white",
            text_color="white" if chosen else "grey-9",
            on_click=lambda: self._choose(reason),
        )
        chip.props(f"data-testid=reason-{label} {'' if chosen else 'outline'}")

    async def _choose(self, reason: str | None) -> None:
        self._reason = reason
        await self.refresh()


def _row(record: QuarantineRead) -> dict[str, Any]:
    preview = record.payload_preview
    if len(preview) > _PREVIEW_CHARS:
        preview = preview[:_PREVIEW_CHARS] + "…"
    return {
        "id": record.id,
        "received": format_time(record.received_at),
        "topic": record.topic,
        "reason": record.reason,
        "detail": record.detail,
        "size": format_size(record.size),
        "payload": preview,
    }


def _count_text(page: QuarantinePage, reason: str | None) -> str:
    which = f"with reason {reason}" if reason else "in quarantine"
    shown = f", showing the newest {len(page.items)}" if page.total > len(page.items) else ""
    return f"{count_of(page.total, 'record')} {which}{shown}"
