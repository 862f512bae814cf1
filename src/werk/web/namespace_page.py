"""The namespace browser at `/`: search, the ISA-95 tree and live last-known values."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final
from urllib.parse import quote

from nicegui import events, ui

from werk.iam.permissions import UNS_READ
from werk.uns.namespace import TagState, TreeNode
from werk.uns.schemas import TagPage, TagRead
from werk.uns.service import tag_page
from werk.web.auth import Seat, current_seat, guarded_page
from werk.web.context import WebContext
from werk.web.formatting import count_of, format_rate, format_time, format_value, quality_cell_slot
from werk.web.layout import empty_state, frame, section_title

TABLE_LIMIT: Final = 500
SEARCH_LIMIT: Final = 10_000
ROWS_PER_PAGE: Final = 50
_EXPAND_ALL_UP_TO: Final = 30
# Larger namespaces open down to the cells, so assets show but their tags stay folded.
_OPEN_DEPTH: Final = 5
_LEVELS: Final = (
    ("enterprise", "corporate_fare"),
    ("site", "factory"),
    ("area", "dashboard"),
    ("line", "linear_scale"),
    ("cell", "grid_view"),
)
_ASSET: Final = ("asset", "precision_manufacturing")
_NODE: Final = "node:"
_TAG: Final = "tag:"
_COLUMNS: Final[list[dict[str, Any]]] = [
    {"name": "tag", "label": "Tag", "field": "name", "align": "left", "sortable": True},
    {"name": "value", "label": "Value", "field": "value", "align": "right"},
    {"name": "unit", "label": "Unit", "field": "unit", "align": "left"},
    {"name": "quality", "label": "Quality", "field": "quality", "align": "left"},
    {"name": "ts", "label": "Source time (UTC)", "field": "ts", "align": "left", "sortable": True},
    {"name": "rate", "label": "Rate", "field": "rate", "align": "right"},
]
_TAG_CELL: Final = (
    '<q-td :props="props">'
    '<div class="font-medium text-grey-9">{{ props.row.name }}</div>'
    '<div class="text-caption text-grey-6">{{ props.row.node }}</div>'
    "</q-td>"
)
_TREE_HEADER: Final = (
    '<div class="row items-center no-wrap">'
    '<q-icon :name="props.node.icon" size="xs" class="q-mr-sm text-grey-7" />'
    "<span :class=\"props.node.level ? '' : 'text-primary'\">{{ props.node.label }}</span>"
    '<span v-if="props.node.level" class="q-ml-sm text-caption text-grey-5">'
    "{{ props.node.level }}</span>"
    "</div>"
)


def register(context: WebContext) -> None:
    """Register the page at `/`."""

    @guarded_page(context, "/", UNS_READ)
    def namespace_page(node: str = "") -> None:
        with frame("Namespace"):
            NamespaceView(context, current_seat(), prefix=node.strip("/"))


def tag_url(path: str) -> str:
    """The address of a tag's page."""
    return f"/tag/{quote(path, safe='/')}"


class NamespaceView:
    """Search, tree and a live table of the tags below the selected level."""

    def __init__(self, context: WebContext, seat: Seat, *, prefix: str) -> None:
        self._context = context
        self._seat = seat
        self._prefix = prefix
        self._query = ""
        self._known = -1
        section_title("Namespace", "Every tag werk has seen, with its last-known value.")
        self._empty = empty_state(
            "sensors_off",
            "Waiting for the first message",
            f"No tags yet — publish to {context.root}/... or run `werk demo`.",
            "namespace-empty",
        )
        with ui.row().classes("w-full no-wrap items-start gap-4") as self._body:
            self._build_tree_card()
            self._build_table_card()
        self.refresh()
        ui.timer(1.0, self.refresh)

    def _build_tree_card(self) -> None:
        with ui.card().classes("w-96 shrink-0 gap-2").props("flat bordered"):
            self._search = (
                ui.input(placeholder="Search tags by words in their path")
                .props("outlined dense clearable debounce=250 data-testid=tag-search")
                .classes("w-full")
                .on_value_change(self._on_search)
            )
            with self._search.add_slot("prepend"):
                ui.icon("search")
            self._tree = ui.tree([], on_select=self._on_select)
            self._tree.props("dense no-transition data-testid=namespace-tree")
            self._tree.classes("w-full text-sm max-h-[70vh] overflow-auto")
            self._tree.add_slot("default-header", _TREE_HEADER)

    def _build_table_card(self) -> None:
        with ui.card().classes("grow min-w-0 gap-1").props("flat bordered"):
            with ui.row().classes("w-full items-baseline justify-between"):
                self._heading = ui.label().classes("text-lg font-medium text-grey-9")
                self._count = ui.label().classes("text-sm text-grey-7")
                self._count.props("data-testid=tag-count")
            self._table = ui.table(
                rows=[], columns=_COLUMNS, row_key="path", pagination=ROWS_PER_PAGE
            )
            self._table.props("flat dense wrap-cells data-testid=tag-table")
            self._table.classes("w-full cursor-pointer")
            self._table.add_slot("body-cell-tag", _TAG_CELL)
            self._table.add_slot("body-cell-quality", quality_cell_slot())
            self._table.on("rowClick", self._on_row_click, [[], ["path"], None])

    def refresh(self) -> None:
        """Show new tags in the tree and the latest values in the table."""
        known = len(self._context.namespace)
        if known != self._known:
            self._known = known
            self._rebuild_tree()
            shown = bool(self._tree.props["nodes"])
            self._empty.set_visibility(not shown)
            self._body.set_visibility(shown)
        self._update_table()

    def _rebuild_tree(self) -> None:
        first = not self._tree.props["nodes"]
        tree = self._context.namespace.tree()
        self._tree.props["nodes"] = level_nodes(tree, depth=0, visible=self._visible)
        if first:
            self._expand_initially()

    def _expand_initially(self) -> None:
        # Later rebuilds keep what the user expanded or collapsed.
        if self._known <= _EXPAND_ALL_UP_TO:
            self._tree.expand()
        else:
            opened = _level_ids(self._tree.props["nodes"], depth=0)
            self._tree.expand(opened + _ancestors(self._prefix) if self._prefix else opened)
        if self._prefix:
            self._tree.select(_NODE + self._prefix)

    def _update_table(self) -> None:
        page = self._tag_page()
        rows = [_row(tag) for tag in page.items]
        if rows != self._table.rows:
            self._table.rows = rows
        self._heading.set_text(self._title())
        shown = f" (showing {len(page.items)})" if page.total > len(page.items) else ""
        self._count.set_text(count_of(page.total, "tag") + shown)

    def _tag_page(self) -> TagPage:
        context = self._context
        if self._query:
            found = context.namespace.search(self._query, limit=SEARCH_LIMIT)
            return tag_page(self._within_scope(found), root=context.root, limit=TABLE_LIMIT)
        subtree = f"{self._prefix}/#" if self._prefix else "#"
        states = self._within_scope(context.namespace.select(subtree))
        return tag_page(states, root=context.root, limit=TABLE_LIMIT)

    def _visible(self, path: str) -> bool:
        return self._seat.principal.allows(UNS_READ, path=path)

    def _within_scope(self, states: list[TagState]) -> list[TagState]:
        return [s for s in states if self._visible(s.path)]

    def _title(self) -> str:
        if self._query:
            return f"Search: {self._query}"
        return self._prefix or "All tags"

    def _on_search(self, event: events.ValueChangeEventArguments[Any]) -> None:
        self._query = (event.value or "").strip()
        self._update_table()

    def _on_select(self, event: events.ValueChangeEventArguments[Any]) -> None:
        selected = event.value or ""
        if selected.startswith(_TAG):
            ui.navigate.to(tag_url(selected.removeprefix(_TAG)))
            return
        self._prefix = selected.removeprefix(_NODE)
        self._update_table()

    def _on_row_click(self, event: events.GenericEventArguments) -> None:
        ui.navigate.to(tag_url(event.args[1]["path"]))


def level_nodes(
    node: TreeNode, *, depth: int, visible: Callable[[str], bool]
) -> list[dict[str, Any]]:
    """Tree nodes of `node`'s child levels and `visible` tags, for `ui.tree`."""
    level, icon = _LEVELS[depth] if depth < len(_LEVELS) else _ASSET
    levels = [
        {
            "id": _NODE + child.path,
            "label": child.name,
            "icon": icon,
            "level": level,
            "children": children,
        }
        for child in node.children.values()
        if (children := level_nodes(child, depth=depth + 1, visible=visible))
    ]
    tags = [
        {"id": _TAG + path, "label": path.rsplit("/", 1)[-1], "icon": "sell"}
        for path in node.tags
        if visible(path)
    ]
    return levels + tags


def _level_ids(nodes: list[dict[str, Any]], *, depth: int) -> list[str]:
    if depth >= _OPEN_DEPTH:
        return []
    ids: list[str] = []
    for node in nodes:
        if node["id"].startswith(_NODE):
            ids += [node["id"], *_level_ids(node["children"], depth=depth + 1)]
    return ids


def _ancestors(prefix: str) -> list[str]:
    parts = prefix.split("/")
    return [_NODE + "/".join(parts[: i + 1]) for i in range(len(parts))]


def _row(tag: TagRead) -> dict[str, Any]:
    node, _, name = tag.path.rpartition("/")
    return {
        "path": tag.path,
        "name": name,
        "node": node,
        "value": format_value(tag.value),
        "unit": tag.unit or "",
        "quality": tag.quality,
        "ts": format_time(tag.ts),
        "rate": format_rate(tag.rate_per_s),
    }
