"""The tag page at `/tag/{path}`: live value with its lineage and a ten-minute trend."""

from __future__ import annotations

from typing import Final
from urllib.parse import quote

from nicegui import run, ui

from werk.core.clock import NS_PER_S, now_ns
from werk.core.errors import NotFound
from werk.historian.layers import Layer
from werk.historian.schemas import HistoryQuery, HistoryRead
from werk.historian.service import history
from werk.iam.permissions import UNS_READ
from werk.uns.schemas import TagRead
from werk.uns.service import tag_read
from werk.web.auth import current_seat, guarded_page
from werk.web.context import WebContext
from werk.web.formatting import format_rate, format_time, format_value, quality_color
from werk.web.layout import empty_state, frame
from werk.web.trends import WINDOW_NS, NumericTrend, StateChanges, Trend

HISTORY_LIMIT: Final = 20_000
# Devices' clocks run ahead of ours by a little; their newest samples still belong in the trend.
_CLOCK_SKEW_NS: Final = 60 * NS_PER_S
_FIELDS: Final = (
    ("Source time (UTC)", "tag-ts"),
    ("Ingest time (UTC)", "tag-ingest-ts"),
    ("Message id", "tag-message-id"),
    ("Rate", "tag-rate"),
    ("Samples", "tag-samples"),
    ("Data type", "tag-type"),
    ("Topic", "tag-topic"),
)


def register(context: WebContext) -> None:
    """Register the page at `/tag/{path}`."""

    @guarded_page(context, "/tag/{path:path}", UNS_READ)
    async def tag_page(path: str) -> None:
        ui.page_title(f"{path.rsplit('/', 1)[-1]} · werk")
        with frame("Namespace"):
            breadcrumb(path)
            try:
                if not current_seat().principal.allows(UNS_READ, path=path):
                    raise NotFound(f"nothing at {path!r}", path=path)
                state = context.namespace.get(path)
            except NotFound:
                ui.status_code(404)
                _not_found(path)
                return
            view = TagView(context, tag_read(state, root=context.root))
            await view.load_history()
            ui.timer(1.0, view.refresh)


def breadcrumb(path: str) -> None:
    """Links to every level above the tag, then the tag's name."""
    parts = path.split("/")
    with ui.row().classes("items-center gap-1 text-sm").props("data-testid=breadcrumb"):
        ui.link("Namespace", "/").classes("text-primary no-underline")
        for depth, part in enumerate(parts[:-1], start=1):
            ui.icon("chevron_right").classes("text-grey-5")
            node = quote("/".join(parts[:depth]), safe="/")
            ui.link(part, f"/?node={node}").classes("text-primary no-underline")
        ui.icon("chevron_right").classes("text-grey-5")
        ui.label(parts[-1]).classes("font-semibold text-grey-9")


def _not_found(path: str) -> None:
    with empty_state(
        "search_off",
        "Tag not found",
        f"No tag {path!r} has been seen in the namespace.",
        "tag-not-found",
    ):
        ui.button("Back to the namespace", icon="arrow_back").props("flat no-caps href=/ tag=a")


class TagView:
    """The live value card and the trend of one tag."""

    def __init__(self, context: WebContext, tag: TagRead) -> None:
        self._context = context
        self._path = tag.path
        self._message_id = tag.message_id
        self._fields: dict[str, ui.label] = {}
        with ui.row().classes("w-full no-wrap items-stretch gap-4"):
            self._build_value_card(tag)
            with ui.card().classes("grow min-w-0 gap-2").props("flat bordered"):
                with ui.row().classes("w-full items-baseline justify-between"):
                    title = "Recent changes" if tag.data_type == "string" else "Last 10 minutes"
                    ui.label(title).classes("text-lg font-medium text-grey-9")
                    self._caption = ui.label().classes("text-sm text-grey-7")
                    self._caption.props("data-testid=trend-caption")
                    layers = f"/layers/{quote(tag.path, safe='/')}?layer=processed"
                    ui.link("Layers and lineage", layers).classes(
                        "text-sm text-primary no-underline"
                    ).props("data-testid=tag-layers-link")
                self._trend: Trend = (
                    StateChanges() if tag.data_type == "string" else NumericTrend(tag)
                )
        self._show(tag)

    def _build_value_card(self, tag: TagRead) -> None:
        with ui.card().classes("w-96 shrink-0 gap-3").props("flat bordered"):
            ui.label(tag.path.rsplit("/", 1)[-1]).classes("text-lg font-medium text-grey-9")
            with ui.row().classes("items-baseline gap-2"):
                self._value = ui.label().classes("text-4xl font-semibold text-primary break-all")
                self._value.props("data-testid=tag-value")
                self._unit = ui.label().classes("text-lg text-grey-7")
                self._unit.props("data-testid=tag-unit")
            self._quality = ui.badge().props("data-testid=tag-quality")
            ui.separator()
            with ui.grid(columns="auto 1fr").classes("w-full gap-x-4 gap-y-1 text-sm"):
                for label, testid in _FIELDS:
                    ui.label(label).classes("text-grey-7")
                    self._fields[testid] = (
                        ui.label().classes("break-all").props(f"data-testid={testid}")
                    )

    def _show(self, tag: TagRead) -> None:
        self._value.set_text(format_value(tag.value))
        self._unit.set_text(tag.unit or "")
        self._quality.set_text(tag.quality)
        self._quality.props(f"color={quality_color(tag.quality)}")
        shown = {
            "tag-ts": format_time(tag.ts),
            "tag-ingest-ts": format_time(tag.ingest_ts),
            "tag-message-id": tag.message_id,
            "tag-rate": format_rate(tag.rate_per_s),
            "tag-samples": str(tag.samples),
            "tag-type": tag.data_type,
            "tag-topic": tag.topic,
        }
        for testid, text in shown.items():
            self._fields[testid].set_text(text)

    async def load_history(self) -> None:
        """Fill the trend from the historian's raw samples of the last ten minutes."""
        read = await run.io_bound(self._read_history)
        self._trend.load(read.points if read else [])
        self._trend.slide(now_ns())
        self._caption.set_text(_caption(read))

    def _read_history(self) -> HistoryRead | None:
        end = now_ns()
        try:
            query = HistoryQuery(
                tag=self._path,
                layer=Layer.RAW,
                start_ns=end - WINDOW_NS,
                end_ns=end + _CLOCK_SKEW_NS,
                limit=HISTORY_LIMIT,
            )
            return history(store=self._context.store, query=query)
        except NotFound:
            # The registry saw the tag before the historian's first write of it.
            return None

    def refresh(self) -> None:
        """Show the latest value and add it to the trend when it is new."""
        tag = tag_read(self._context.namespace.get(self._path), root=self._context.root)
        self._show(tag)
        if tag.message_id != self._message_id:
            self._message_id = tag.message_id
            self._trend.add(tag)
        self._trend.slide(now_ns())


def _caption(read: HistoryRead | None) -> str:
    if read is None or not read.points:
        return "no samples in the historian yet; live values follow"
    shown = f"first {len(read.points)}" if read.truncated else str(len(read.points))
    return f"{shown} samples from the historian, then live values"
