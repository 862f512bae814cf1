"""Land a batch: valid rows become records (and measure samples), the rest go to quarantine."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
import pyarrow as pa
from sqlalchemy.orm import Session, sessionmaker

from werk.core.clock import now_ns
from werk.core.db import session_scope
from werk.historian.layers import Record, Table
from werk.historian.models import RawColumns
from werk.historian.store import HistorianStore
from werk.sources.connector import Batch, ColumnMap
from werk.sources.contracts import DatasetContract
from werk.sources.validation import Rejection, ValidRow, validate_row
from werk.uns.quarantine import Rejected, add_rejected

GOOD: Final = 0  # quality code of a measure sample: the business system is the truth
_DAY_NS: Final = 86_400 * 1_000_000_000


@dataclass(slots=True)
class Landed:
    """What landing a batch did; `rejections` are (row index in the batch, why)."""

    read: int = 0
    accepted: int = 0
    rejected: int = 0
    stored: int = 0
    samples: int = 0
    rejections: list[tuple[int, Rejection]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Target:
    """Where a batch goes: the store, the relational database, the dataset, the source."""

    store: HistorianStore
    sessions: sessionmaker[Session]
    contract: DatasetContract
    source: str

    @property
    def topic(self) -> str:
        """The quarantine topic of the source's rejected rows."""
        return f"sources/{self.source}/{self.contract.name}"


def land(target: Target, batch: Batch) -> Landed:
    """Validate, store and quarantine a batch; then run its `remember` with the quarantine."""
    received = now_ns()
    landed = Landed(read=len(batch.rows))
    valid: list[ValidRow] = []
    for index, row in enumerate(batch.rows):
        mapped = _mapped(batch.columns, row)
        outcome = validate_row(target.contract, mapped, text=batch.text, now_ns=received)
        if isinstance(outcome, ValidRow):
            valid.append(outcome)
        else:
            landed.rejections.append((index, outcome))
    landed.accepted, landed.rejected = len(valid), len(landed.rejections)
    landed.stored, landed.samples = _store(target, valid, received)
    rejected = [_rejected(target, batch, i, r, received) for i, r in landed.rejections]
    if rejected or batch.remember is not None:
        with session_scope(target.sessions) as session:
            add_rejected(session=session, rejected=rejected)
            if batch.remember is not None:
                batch.remember(session)
    return landed


def _mapped(columns: ColumnMap | None, row: object) -> object:
    return columns.apply(row) if columns is not None and isinstance(row, Mapping) else row


def message_id(source: str, dataset: str, row: ValidRow) -> int:
    """A stable 63-bit id of one row from one source: the same row again gets the same id."""
    digest = hashlib.blake2b(digest_size=8)
    for part in (source, dataset, row.key, str(row.ts_ns)):
        digest.update(part.encode() + b"\x00")
    digest.update(orjson.dumps(row.payload, option=orjson.OPT_SORT_KEYS))
    return int.from_bytes(digest.digest(), "big") >> 1


def _store(target: Target, valid: list[ValidRow], received: int) -> tuple[int, int]:
    if not valid:
        return 0, 0
    name, source = target.contract.name, target.source
    ids = [message_id(source, name, row) for row in valid]
    records = [
        Record(name, row.key, row.ts_ns, received, dict(row.payload), msg_id, source)
        for row, msg_id in zip(valid, ids, strict=True)
    ]
    stored = target.store.write_records(records)
    samples = _new_samples(target.store, _samples(valid, ids), received)
    return stored, target.store.write(samples) if len(samples) else 0


_Sample = tuple[str, int, int, float | bool]  # tag, ts_ns, msg_id, value


def _samples(valid: Iterable[ValidRow], ids: Iterable[int]) -> dict[tuple[str, int, int], _Sample]:
    found: dict[tuple[str, int, int], _Sample] = {}
    for row, msg_id in zip(valid, ids, strict=True):
        for tag, value in row.samples:
            found[(tag, row.ts_ns, msg_id)] = (tag, row.ts_ns, msg_id, value)
    return found


def _new_samples(
    store: HistorianStore, samples: dict[tuple[str, int, int], _Sample], received: int
) -> RawColumns:
    """The samples whose (tag, ts, msg_id) the raw layer does not hold yet."""
    tags = [s[0] for s in samples.values()]
    stamps = [s[1] for s in samples.values()]
    taken = store.existing(tags, stamps) if samples else set()
    stored = _stored_keys(store, taken)
    rows = RawColumns()
    for key, (tag, ts_ns, msg_id, value) in samples.items():
        if key not in stored:
            rows.append(tag, ts_ns, received, value, GOOD, msg_id)
    return rows


def _stored_keys(store: HistorianStore, taken: set[tuple[str, int]]) -> set[tuple[str, int, int]]:
    """(tag, ts, msg_id) of the stored samples at the taken (tag, ts) pairs.

    One scan per day the pairs touch, over just their tags: a batch that repeats stored
    rows costs a few scans, not a query per row.
    """
    by_day: dict[int, set[str]] = defaultdict(set)
    for tag, ts_ns in taken:
        by_day[ts_ns // _DAY_NS].add(tag)
    keys: set[tuple[str, int, int]] = set()
    for day, tags in by_day.items():
        for chunk in store.scan(Table.RAW, day * _DAY_NS, (day + 1) * _DAY_NS, names=sorted(tags)):
            keys.update(_keys(chunk))
    return keys


def _keys(chunk: pa.Table) -> Iterator[tuple[str, int, int]]:
    tags = chunk.column("tag").to_pylist()
    stamps_us = chunk.column("ts").cast(pa.int64()).to_pylist()
    ids = chunk.column("msg_id").to_pylist()
    for tag, ts_us, msg_id in zip(tags, stamps_us, ids, strict=True):
        yield tag, ts_us * 1000, msg_id


def _rejected(
    target: Target, batch: Batch, index: int, rejection: Rejection, received: int
) -> Rejected:
    payload = orjson.dumps(_plain(batch.rows[index]), default=str)
    detail = f"{batch.where(index)}: {rejection.detail}"
    return Rejected(received, target.topic, payload, rejection.reason, detail)


def _plain(row: object) -> Any:
    if isinstance(row, Mapping):
        return {str(k): v for k, v in row.items()}
    return row
