"""The namespace registry: every tag seen, its type, unit, rate and last-known value."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any, Final

import orjson
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker

from werk.core.clock import NS_PER_S
from werk.core.errors import NotFound, PayloadError
from werk.core.filters import matches
from werk.uns.contracts import Decoded, Quality, Sample, SampleColumns
from werk.uns.models import TagRecord

_EWMA: Final = 0.2


_DATA_TYPES: Final = {bool: "boolean", int: "number", float: "number", str: "string"}


def data_type_of(value: bool | int | float | str) -> str:
    """The registry's data type of a value: boolean, number or string."""
    return _DATA_TYPES[type(value)]


@dataclass(slots=True)
class TagState:
    """What the registry knows of one tag, including its last-known value."""

    path: str
    data_type: str
    unit: str | None
    first_seen_ns: int
    last_seen_ns: int
    samples: int
    interval_s: float | None
    value: bool | int | float | str
    ts_ns: int
    ingest_ns: int
    quality: Quality
    msg_id: int

    def rate(self, now_ns: int) -> float:
        """Samples per second, decaying once the tag goes quiet."""
        if self.interval_s is None:
            return 0.0
        quiet_s = (now_ns - self.last_seen_ns) / NS_PER_S
        return 1.0 / max(self.interval_s, quiet_s, 1e-6)


@dataclass(slots=True)
class _Fold:
    """Samples of one tag within a batch: the newest by source time, and how many."""

    sample: Sample
    ingest_ns: int
    msg_id: int
    first_ingest_ns: int
    last_ingest_ns: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        self.last_ingest_ns = self.first_ingest_ns


@dataclass(slots=True)
class TreeNode:
    """A level of the namespace tree with its children and the tags directly below it."""

    name: str
    path: str
    children: dict[str, TreeNode] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Plain nested dictionaries for the API."""
        return {
            "name": self.name,
            "path": self.path,
            "children": [c.as_dict() for c in self.children.values()],
            "tags": self.tags,
        }


class Namespace:
    """In-memory registry and last-known-value store, persisted by `flush`."""

    def __init__(self) -> None:
        self._tags: dict[str, TagState] = {}
        self._dirty: set[str] = set()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._tags)

    def check_types(self, samples: Iterable[Sample], pending: dict[str, str]) -> None:
        """Raise `PayloadError` if a sample would change the data type of a tag.

        `pending` holds the types of tags accepted earlier in the same batch, which the
        registry does not know yet.
        """
        tags, types = self._tags, _DATA_TYPES
        for sample in samples:
            state = tags.get(sample.tag_path)
            known = state.data_type if state is not None else pending.get(sample.tag_path)
            if known is not None and known != types[type(sample.value)]:
                raise PayloadError(
                    f"tag {sample.tag_path!r} is {known}, "
                    f"got {data_type_of(sample.value)} {sample.value!r}",
                    code="type_changed",
                )

    def note_types(self, samples: Iterable[Sample], pending: dict[str, str]) -> None:
        """Remember the types of tags the registry does not know yet (see `check_types`)."""
        tags, types = self._tags, _DATA_TYPES
        for sample in samples:
            if sample.tag_path not in tags:
                pending.setdefault(sample.tag_path, types[type(sample.value)])

    def observe(self, samples: Iterable[Sample], ingest_ns: int, msg_id: int) -> None:
        """Record the samples of one message."""
        self.observe_messages([(Decoded(msg_id, list(samples)), ingest_ns)])

    def observe_messages(self, messages: Iterable[tuple[Decoded, int]]) -> int:
        """Record the samples of many messages; return how many samples there were.

        Samples are first folded per tag (newest source time wins), so the registry is
        touched once per tag and batch rather than once per sample. Samples given as
        columns (in-order live data) fold by arrival: the last one received wins.
        """
        folded: dict[str, _Fold] = {}
        columnar: list[tuple[Decoded, int]] = []
        count = 0
        for decoded, ingest_ns in messages:
            _fold_rows(folded, decoded, ingest_ns)
            if decoded.columns is not None:
                columnar.append((decoded, ingest_ns))
            count += len(decoded)
        if columnar:
            for path, fold in _fold_columns(columnar).items():
                _merge(folded, path, fold)
        with self._lock:
            for path, fold in folded.items():
                self._apply(path, fold)
            self._dirty.update(folded)
        return count

    def _apply(self, path: str, fold: _Fold) -> None:
        sample, state = fold.sample, self._tags.get(path)
        gaps = fold.count  # intervals between samples this fold tells us about
        if state is None:
            state = self._tags[path] = TagState(
                path, data_type_of(sample.value), sample.unit, fold.first_ingest_ns,
                fold.first_ingest_ns, 0, None, sample.value, sample.ts_ns, fold.ingest_ns,
                sample.quality, fold.msg_id,
            )  # fmt: skip
            gaps -= 1
        if gaps:
            interval = (fold.last_ingest_ns - state.last_seen_ns) / NS_PER_S / gaps
            previous = state.interval_s
            state.interval_s = (
                interval if previous is None else _EWMA * interval + (1 - _EWMA) * previous
            )
        state.last_seen_ns = fold.last_ingest_ns
        state.samples += fold.count
        state.unit = sample.unit or state.unit
        if sample.ts_ns >= state.ts_ns:
            state.value, state.ts_ns, state.quality = sample.value, sample.ts_ns, sample.quality
            state.ingest_ns, state.msg_id = fold.ingest_ns, fold.msg_id

    def missing(self, paths: Iterable[str]) -> list[str]:
        """Those of `paths` the registry does not know."""
        return [p for p in paths if p not in self._tags]

    def recover(self, path: str, value: bool | float | str, ts_ns: int, ingest_ns: int,
                quality: int, msg_id: int) -> None:  # fmt: skip
        """Re-create a tag the historian has but the registry lost.

        That happens after a crash between a historian write and the registry's next
        save; the unit and the counts start again.
        """
        with self._lock:
            self._tags[path] = TagState(
                path, data_type_of(value), None, ingest_ns, ingest_ns, 1, None, value, ts_ns,
                ingest_ns, Quality(quality), msg_id,
            )  # fmt: skip
            self._dirty.add(path)

    def find(self, path: str) -> TagState | None:
        """One tag, or None when the namespace has not seen it."""
        return self._tags.get(path)

    def get(self, path: str) -> TagState:
        """One tag, or NotFound."""
        state = self._tags.get(path)
        if state is None:
            raise NotFound(f"no tag {path!r} in the namespace", tag=path)
        return state

    def select(self, topic_filter: str) -> list[TagState]:
        """Tags whose path matches an MQTT-style filter (``acme/+/machining/#``)."""
        return [s for path, s in self._snapshot() if matches(topic_filter, path)]

    def search(self, text: str, limit: int) -> list[TagState]:
        """Tags whose path contains every word of `text` (case-insensitive)."""
        words = text.lower().split()
        found = [s for path, s in self._snapshot() if all(w in path.lower() for w in words)]
        return found[:limit]

    def tree(self, prefix: str = "") -> TreeNode:
        """The namespace below `prefix` as a tree of levels with their tags."""
        root = TreeNode(prefix.rsplit("/", 1)[-1], prefix)
        start = f"{prefix}/" if prefix else ""
        for path, _ in self._snapshot():
            if path.startswith(start):
                _insert(root, path[len(start) :].split("/"))
        return root

    def _snapshot(self) -> list[tuple[str, TagState]]:
        with self._lock:
            return sorted(self._tags.items())

    def load(self, *, session: Session) -> None:
        """Fill the registry from its persisted records."""
        records = session.scalars(select(TagRecord)).all()
        with self._lock:
            self._tags = {r.path: _state_from_record(r) for r in records}

    def persist(self, sessions: sessionmaker[Session]) -> int:
        """Upsert and commit the tags changed since the last time; on failure keep them."""
        with self._lock:
            dirty, self._dirty = self._dirty, set()
            rows = [_record_values(self._tags[p]) for p in dirty]
        try:
            if rows:
                with sessions.begin() as session:
                    session.execute(_upsert_statement(session), rows)
        except BaseException:
            with self._lock:
                self._dirty |= dirty
            raise
        return len(rows)


def _fold_rows(folded: dict[str, _Fold], decoded: Decoded, ingest_ns: int) -> None:
    msg_id = decoded.message_id
    for sample in decoded.samples:
        fold = folded.get(sample.tag_path)
        if fold is None:
            folded[sample.tag_path] = _Fold(sample, ingest_ns, msg_id, ingest_ns)
            continue
        fold.count += 1
        fold.last_ingest_ns = ingest_ns
        if sample.ts_ns >= fold.sample.ts_ns:
            fold.sample, fold.ingest_ns, fold.msg_id = sample, ingest_ns, msg_id


def _fold_columns(messages: list[tuple[Decoded, int]]) -> dict[str, _Fold]:
    """Fold column samples with dictionary and counter updates (no loop per sample)."""
    latest: dict[str, tuple[int, int]] = {}
    counts: Counter[str] = Counter()
    firsts: dict[str, int] = {}
    for index, (decoded, _) in enumerate(messages):
        tags = _columns(decoded).tags
        rows = zip(repeat(index), range(len(tags)), strict=False)
        latest.update(zip(tags, rows, strict=True))
        counts.update(tags)
    for decoded, ingest_ns in reversed(messages):
        firsts.update(zip(_columns(decoded).tags, repeat(ingest_ns), strict=False))
    folded = {}
    for path, (index, row) in latest.items():
        decoded, ingest_ns = messages[index]
        cols = _columns(decoded)
        sample = Sample(path, cols.ts_ns[row], cols.values[row], cols.quality, cols.units[row])
        fold = _Fold(sample, ingest_ns, decoded.message_id, firsts[path])
        fold.last_ingest_ns, fold.count = ingest_ns, counts[path]
        folded[path] = fold
    return folded


def _columns(decoded: Decoded) -> SampleColumns:
    assert decoded.columns is not None
    return decoded.columns


def _merge(folded: dict[str, _Fold], path: str, fold: _Fold) -> None:
    """Combine a column fold with a row fold of the same tag and batch."""
    other = folded.get(path)
    if other is None:
        folded[path] = fold
        return
    newest = fold if fold.sample.ts_ns >= other.sample.ts_ns else other
    newest.count = fold.count + other.count
    newest.first_ingest_ns = min(fold.first_ingest_ns, other.first_ingest_ns)
    newest.last_ingest_ns = max(fold.last_ingest_ns, other.last_ingest_ns)
    folded[path] = newest


def _insert(node: TreeNode, parts: list[str]) -> None:
    for name in parts[:-1]:
        child = node.children.get(name)
        if child is None:
            path = f"{node.path}/{name}" if node.path else name
            child = node.children[name] = TreeNode(name, path)
        node = child
    node.tags.append(f"{node.path}/{parts[-1]}" if node.path else parts[-1])


def _record_values(state: TagState) -> dict[str, Any]:
    return {
        "path": state.path,
        "data_type": state.data_type,
        "unit": state.unit,
        "first_seen_ns": state.first_seen_ns,
        "last_seen_ns": state.last_seen_ns,
        "samples": state.samples,
        "interval_s": state.interval_s,
        "value_json": orjson.dumps(state.value).decode(),
        "ts_ns": state.ts_ns,
        "ingest_ns": state.ingest_ns,
        "quality": int(state.quality),
        "msg_id": state.msg_id,
    }


def _upsert_statement(session: Session) -> Any:
    """One upsert executed for many rows (executemany), compiled once per dialect."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = insert(TagRecord)
    updates = {c.name: statement.excluded[c.name] for c in TagRecord.__table__.columns}
    del updates["path"]
    return statement.on_conflict_do_update(index_elements=["path"], set_=updates)


def _state_from_record(record: TagRecord) -> TagState:
    return TagState(
        record.path, record.data_type, record.unit, record.first_seen_ns, record.last_seen_ns,
        record.samples, record.interval_s, orjson.loads(record.value_json), record.ts_ns,
        record.ingest_ns, Quality(record.quality), record.msg_id,
    )  # fmt: skip
