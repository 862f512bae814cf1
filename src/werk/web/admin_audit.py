"""The audit log at `/admin/audit`: who did what, when, from where, and how it ended."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlencode

from nicegui import ui

from werk.iam.permissions import AUDIT_READ
from werk.iam.scopes import Principal
from werk.iam.views import AuditEventView
from werk.web.admin_common import Admin, admin_frame, column, table, when
from werk.web.auth import guarded_page
from werk.web.context import WebContext
from werk.web.formatting import count_of

if TYPE_CHECKING:
    from werk.iam.service import Iam

PAGE: Final = 50
EXPORT: Final = "/api/v1/iam/audit/export"
RANGES: Final = {"1h": 3600, "24h": 86_400, "7d": 7 * 86_400, "30d": 30 * 86_400, "all": None}
_RANGE_LABELS: Final = {
    "1h": "Last hour", "24h": "Last 24 h", "7d": "Last 7 days", "30d": "Last 30 days",
    "all": "Everything",
}  # fmt: skip
_OUTCOMES: Final = {
    "": "Any outcome", "ok": "ok", "denied": "denied", "failed": "failed", "error": "error",
}  # fmt: skip
_DETAIL_CHARS: Final = 160
_COLUMNS: Final = [
    column("ts", "Time (UTC)"),
    column("actor", "Who"),
    column("action", "Action"),
    column("target", "Target"),
    column("outcome", "Outcome"),
    column("status", "Status", "right"),
    column("ip", "From"),
    column("detail", "Detail"),
]
_OUTCOME_CELL: Final = (
    '<q-td :props="props"><q-badge :label="props.value" :color="'
    "{ok: 'positive', denied: 'negative', failed: 'warning', error: 'negative'}[props.value]"
    '" /></q-td>'
)


@dataclass(slots=True)
class Filters:
    """What the viewer asked for: the filters of the query and the export."""

    action: str = ""
    outcome: str = ""
    actor: str = ""
    last: str = "24h"
    newer: list[int | None] = field(default_factory=list)
    before_seq: int | None = None

    def since(self) -> datetime | None:
        """The start of the chosen range; None for everything."""
        seconds = RANGES[self.last]
        return None if seconds is None else datetime.now(UTC) - timedelta(seconds=seconds)

    def query(self, actor_id: str | None) -> dict[str, Any]:
        """The filters as keyword arguments of the audit query."""
        found: dict[str, Any] = {
            "action": self.action or None, "outcome": self.outcome or None,
            "actor_id": actor_id, "since": self.since(),
        }  # fmt: skip
        return {k: v for k, v in found.items() if v is not None}


@dataclass(frozen=True, slots=True)
class Found:
    """One page of events and the actor the filter named."""

    events: list[AuditEventView]
    more: bool
    actor_id: str | None
    unknown_actor: bool = False


def query_page(iam: Iam, viewer: Principal, filters: Filters) -> Found:
    """A page of events, newest first, before the cursor."""
    actor_id = iam.directory.find_by_name(filters.actor) if filters.actor else None
    if filters.actor and actor_id is None:
        return Found([], False, None, unknown_actor=True)
    events = iam.audit.query(
        viewer, **filters.query(actor_id), before_seq=filters.before_seq, newest_first=True,
        limit=PAGE + 1,
    )  # fmt: skip
    return Found(events[:PAGE], len(events) > PAGE, actor_id)


def register(context: WebContext) -> None:
    """Register the page at `/admin/audit`."""

    @guarded_page(context, "/admin/audit", AUDIT_READ)
    async def audit() -> None:
        with admin_frame(
            "Audit log",
            "Every sign-in, refusal and change, append-only and chained by hashes.",
        ) as seat:
            view = AuditView(Admin(context, seat))
            await view.refresh()


class AuditView:
    """Filters, one page of events, paging and export links."""

    def __init__(self, admin: Admin) -> None:
        self._admin = admin
        self._filters = Filters()
        self._build_filters()
        with ui.card().classes("w-full gap-1").props("flat bordered"):
            with ui.row().classes("w-full items-center justify-between"):
                self._count = ui.label().classes("text-sm text-grey-7")
                self._count.props("data-testid=audit-count")
                self._exports = ui.row().classes("items-center gap-2")
            self._table = table(_COLUMNS, "audit-table")
            self._table.add_slot("body-cell-outcome", _OUTCOME_CELL)
            with ui.row().classes("w-full justify-end gap-2"):
                self._newer = ui.button("Newer", icon="chevron_left", on_click=self._go_newer)
                self._newer.props("flat no-caps data-testid=audit-newer")
                self._older = ui.button("Older", icon="chevron_right", on_click=self._go_older)
                self._older.props("flat no-caps icon-right=chevron_right data-testid=audit-older")

    def _build_filters(self) -> None:
        filters = self._filters
        with ui.row().classes("w-full items-end gap-2"):
            ui.input("Action (auth.login, iam.*)").bind_value(filters, "action").props(
                "outlined dense clearable data-testid=audit-action"
            ).classes("w-64")
            ui.select(_OUTCOMES, label="Outcome").bind_value(filters, "outcome").props(
                "outlined dense data-testid=audit-outcome"
            ).classes("w-40")
            ui.input("Who (name)").bind_value(filters, "actor").props(
                "outlined dense clearable data-testid=audit-actor"
            ).classes("w-56")
            ui.select(_RANGE_LABELS, label="When").bind_value(filters, "last").props(
                "outlined dense data-testid=audit-range"
            ).classes("w-40")
            ui.button("Show", icon="filter_alt", on_click=self._apply).props(
                "unelevated no-caps color=primary data-testid=audit-apply"
            )

    async def refresh(self) -> None:
        """Load the page the cursor points at."""
        filters = self._filters
        filters.action = (filters.action or "").strip()
        filters.actor = (filters.actor or "").strip()
        found = await self._admin.read(lambda iam, viewer: query_page(iam, viewer, filters))
        if found is None:
            return
        self._table.rows = [_row(event) for event in found.events]
        self._count.set_text(_count_text(found, filters.actor))
        self._older.set_enabled(found.more)
        self._newer.set_enabled(bool(filters.newer))
        self._show_exports(found.actor_id)

    def _show_exports(self, actor_id: str | None) -> None:
        self._exports.clear()
        query = {k: _text(v) for k, v in self._filters.query(actor_id).items()}
        with self._exports:
            ui.label("Export").classes("text-sm text-grey-7")
            for fmt in ("csv", "jsonl"):
                href = f"{EXPORT}?{urlencode({'format': fmt, **query})}"
                ui.link(fmt.upper(), href).classes("text-sm text-primary").props(
                    f"download data-testid=audit-export-{fmt}"
                )

    async def _apply(self) -> None:
        self._filters.newer.clear()
        self._filters.before_seq = None
        await self.refresh()

    async def _go_older(self) -> None:
        rows = self._table.rows
        if rows:
            self._filters.newer.append(self._filters.before_seq)
            self._filters.before_seq = int(rows[-1]["seq"])
            await self.refresh()

    async def _go_newer(self) -> None:
        if self._filters.newer:
            self._filters.before_seq = self._filters.newer.pop()
            await self.refresh()


def _text(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _count_text(found: Found, actor: str) -> str:
    if found.unknown_actor:
        return f"No principal is named {actor!r}."
    more = " (older ones on the next page)" if found.more else ""
    return f"{count_of(len(found.events), 'event')}, newest first{more}"


def _row(event: AuditEventView) -> dict[str, Any]:
    detail = json.dumps(event.detail, separators=(",", ":"), default=str) if event.detail else ""
    if len(detail) > _DETAIL_CHARS:
        detail = detail[:_DETAIL_CHARS] + "…"
    return {
        "key": event.seq,
        "seq": event.seq,
        "ts": when(event.ts),
        "actor": event.actor_name or event.actor_id or "—",
        "action": event.action,
        "target": event.target,
        "outcome": event.outcome,
        "status": event.status or "",
        "ip": event.ip,
        "detail": detail,
    }
