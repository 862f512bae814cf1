"""Retention, compaction, export scans and sizes of the PostgreSQL historian.

Retention drops whole partitions (or TimescaleDB chunks) that lie before the cut and
deletes the rest row by row. Compaction removes exact duplicates, then rewrites fully
covered partitions in (tag, time) order with CLUSTER, or compresses fully covered
chunks on TimescaleDB; partly covered ones are vacuumed so freed space is reused.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final

import psycopg
import pyarrow as pa
from psycopg import sql

from werk.historian.layers import SCHEMAS, Table
from werk.historian.postgres_load import Context
from werk.historian.postgres_pool import scalar, stamp
from werk.historian.postgres_schema import (
    SAMPLE_TABLES,
    SCHEMA,
    SPAN_US,
    Layout,
    partition,
    partition_name,
    statement,
)

Span = tuple[int, int]  # [start, end) in Unix microseconds


@dataclass(frozen=True, slots=True)
class _Spec:
    """Where a table keeps its time and name, and how `scan` reads it."""

    table: str
    time: str
    name: str
    columns: str
    source: str = "{s}.{t} r"


_TAGGED: Final = "{s}.{t} r JOIN {s}.tags t USING (tag_id)"
# the exchange schema's `boolean`: a value of a boolean tag (not its text values)
_SPECS: Final = {
    Table.RAW: _Spec(
        "raw", "ts", "tag_id",
        "t.path, r.ts, r.ingest_ts, r.value, r.text, "
        "coalesce(t.boolean AND r.value IS NOT NULL, false), r.quality, r.msg_id",
        _TAGGED,
    ),
    Table.PROCESSED: _Spec(
        "processed", "ts", "tag_id",
        "t.path, r.ts, r.ingest_ts, r.value, r.text, "
        "coalesce(t.boolean AND r.value IS NOT NULL, false), r.quality, r.flags, r.msg_id",
        _TAGGED,
    ),
    Table.ROLLUPS: _Spec(
        "rollups", "start", "tag_id",
        "t.path, r.width_s, r.start, r.count, r.min, r.max, r.sum, r.first, r.last, "
        "r.first_ts, r.last_ts, r.flagged, r.bad",
        _TAGGED,
    ),
    Table.KPIS: _Spec(
        "kpis", "ts", "name", "r.name, r.ts, r.value, r.unit, r.source, r.lineage::text"
    ),
    Table.RECORDS: _Spec(
        "records", "ts", "dataset",
        "r.dataset, r.key, r.ts, r.ingest_ts, r.payload::text, r.msg_id, r.source",
    ),
}  # fmt: skip
# Rows equal in every column a user sees are exact duplicates: every copy is deleted and
# one put back (with the first batch). No row addresses (ctid) are used, so this works on
# TimescaleDB's compressed chunks as well.
_DEDUPE: Final = """
    WITH dups AS (
        SELECT r.tag_id, r.ts, r.msg_id, r.ingest_ts, r.value, r.text, r.quality,
            min(r.batch) AS batch
        FROM {s}.raw r WHERE {where}
        GROUP BY r.tag_id, r.ts, r.msg_id, r.ingest_ts, r.value, r.text, r.quality
        HAVING count(*) > 1
    ), gone AS (
        DELETE FROM {s}.raw r USING dups d
        WHERE {where} AND r.tag_id = d.tag_id AND r.ts = d.ts AND r.msg_id = d.msg_id
            AND r.ingest_ts = d.ingest_ts AND r.quality = d.quality
            AND r.value IS NOT DISTINCT FROM d.value AND r.text IS NOT DISTINCT FROM d.text
    )
    INSERT INTO {s}.raw (tag_id, ts, ingest_ts, value, text, quality, msg_id, batch)
    SELECT tag_id, ts, ingest_ts, value, text, quality, msg_id, batch FROM dups
"""
_CHILD_INDEX: Final = """
    SELECT c.relname FROM pg_inherits h
    JOIN pg_index i ON i.indexrelid = h.inhrelid JOIN pg_class c ON c.oid = i.indexrelid
    WHERE h.inhparent = %s::regclass AND i.indrelid = %s::regclass
"""
_ORDER_INDEX: Final = {"raw": "raw_tag_ts", "processed": "processed_pkey"}
_SIZE: Final = """
    SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind = 'r'
"""


def size_bytes(cur: psycopg.Cursor[Any], layout: Layout) -> int:
    """Bytes of the historian's tables with their indexes and TOAST data."""
    cur.execute(_SIZE, [SCHEMA])
    total = int(scalar(cur))
    if layout.timescale:
        for name in SAMPLE_TABLES:
            cur.execute("SELECT coalesce(hypertable_size(%s::regclass), 0)", [f"{SCHEMA}.{name}"])
            total += int(scalar(cur))
    return total


def _where(
    ctx: Context, table: Table, span: tuple[int | None, int], names: Sequence[str] | None
) -> tuple[sql.Composed, dict[str, Any]] | None:
    """The row filter of a range and names; None when none of the names is stored."""
    spec = _SPECS[table]
    time, name = sql.Identifier("r", spec.time), sql.Identifier("r", spec.name)
    conditions = [sql.SQL("{} < %(end)s").format(time)]
    params: dict[str, Any] = {"end": stamp(span[1])}
    if span[0] is not None:
        conditions.append(sql.SQL("{} >= %(start)s").format(time))
        params["start"] = stamp(span[0])
    if names is not None:
        keys: list[Any] = ctx.tags.lookup(names) if spec.name == "tag_id" else list(names)
        if not keys:
            return None
        conditions.append(sql.SQL("{} = ANY(%(names)s)").format(name))
        params["names"] = keys
    return sql.SQL(" AND ").join(conditions), params


def _count(
    cur: psycopg.Cursor[Any], table: Table, where: sql.Composed, params: dict[str, Any]
) -> int:
    template = "SELECT count(*) FROM {s}.{t} r WHERE {where}"
    cur.execute(statement(template, t=_SPECS[table].table, where=where), params)
    return int(scalar(cur))


def estimate(ctx: Context, table: Table, span: Span) -> int:
    """Rows of a table in a range."""
    found = _where(ctx, table, span, None)
    assert found is not None
    with ctx.pool.transaction(f"count {table} rows") as cur:
        cur.execute("SET LOCAL statement_timeout = 0")
        return _count(cur, table, *found)


def delete(ctx: Context, table: Table, before_us: int, names: Sequence[str] | None) -> int:
    """Delete rows before a cut; whole partitions before it are dropped."""
    found = _where(ctx, table, (None, before_us), names)
    if found is None:
        return 0
    where, params = found
    spec = _SPECS[table]
    dropped: list[int] = []
    with ctx.pool.transaction(f"delete old {table} rows") as cur:
        cur.execute("SET LOCAL statement_timeout = 0")
        total = _count(cur, table, where, params)
        if spec.table in SAMPLE_TABLES and names is None:
            dropped = _drop_spans(cur, ctx.layout, spec.table, before_us)
        template = "DELETE FROM {s}.{t} r WHERE {where}"
        cur.execute(statement(template, t=spec.table, where=where), params)
    if dropped:
        ctx.layout.forget(spec.table, dropped)
    return total


def _drop_spans(cur: psycopg.Cursor[Any], layout: Layout, name: str, before_us: int) -> list[int]:
    gone = sorted(s for s in layout.spans[name] if (s + 1) * SPAN_US <= before_us)
    if not gone:
        return []
    if layout.timescale:
        cut = stamp((gone[-1] + 1) * SPAN_US)
        cur.execute("SELECT drop_chunks(%s::regclass, older_than => %s)", [f"{SCHEMA}.{name}", cut])
    else:
        for span in gone:
            cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(partition(name, span)))
    cur.execute(statement("DELETE FROM {s}.spans WHERE tbl = %s AND span = ANY(%s)"), [name, gone])
    return gone


def compact(ctx: Context, table: Table, span: Span, names: Sequence[str] | None) -> int:
    """Remove exact duplicates in a range, then pack what it covers; return rows kept."""
    found = _where(ctx, table, span, names)
    if found is None:
        return 0
    where, params = found
    with ctx.pool.transaction(f"compact {table} rows") as cur:
        cur.execute("SET LOCAL statement_timeout = 0")
        if table is Table.RAW:
            cur.execute(statement(_DEDUPE, where=where), params)
        kept = _count(cur, table, where, params)
    _pack(ctx, _SPECS[table].table, span, whole=names is None)
    return kept


def _pack(ctx: Context, name: str, span: Span, *, whole: bool) -> None:
    """Sort and shrink (or compress) what a compaction covered; vacuum the rest."""
    if name not in SAMPLE_TABLES:
        _maintain(ctx, [statement("VACUUM {s}.{t}", t=name)])
        return
    touched = [
        s for s in ctx.layout.spans[name] if s * SPAN_US < span[1] and (s + 1) * SPAN_US > span[0]
    ]
    inside = {
        s for s in touched if whole and s * SPAN_US >= span[0] and (s + 1) * SPAN_US <= span[1]
    }
    if ctx.layout.timescale:
        if inside:
            _compress(ctx, name, min(inside), max(inside))
        return
    with ctx.pool.transaction("find partition indexes") as cur:
        clusters = [_cluster(cur, name, s) for s in sorted(inside)]
    vacuums = [sql.SQL("VACUUM {}").format(partition(name, s)) for s in touched if s not in inside]
    _maintain(ctx, [*clusters, *vacuums])


def _cluster(cur: psycopg.Cursor[Any], name: str, span: int) -> sql.Composed:
    """CLUSTER of one partition on its (tag, time) index."""
    cur.execute(_CHILD_INDEX, [f"{SCHEMA}.{_ORDER_INDEX[name]}", partition_name(name, span)])
    index = str(scalar(cur))
    return sql.SQL("CLUSTER {} USING {}").format(partition(name, span), sql.Identifier(index))


def _compress(ctx: Context, name: str, first: int, last: int) -> None:
    with ctx.pool.transaction("compress chunks") as cur:
        cur.execute("SET LOCAL statement_timeout = 0")
        cur.execute(
            "SELECT compress_chunk(c, if_not_compressed => true) FROM show_chunks("
            "%s::regclass, newer_than => %s, older_than => %s) c",
            [f"{SCHEMA}.{name}", stamp(first * SPAN_US), stamp((last + 1) * SPAN_US)],
        )


def _maintain(ctx: Context, statements: Sequence[sql.Composed | sql.SQL]) -> None:
    """Run statements that cannot run inside a transaction (VACUUM), one by one."""
    if not statements:
        return
    with ctx.pool.connection("pack compacted rows") as conn, _autocommit(conn):
        for each in statements:
            conn.execute(each)


@contextmanager
def _autocommit(conn: psycopg.Connection[Any]) -> Iterator[None]:
    conn.autocommit = True
    conn.execute("SET statement_timeout = 0")
    try:
        yield
    finally:
        if not conn.broken:
            conn.execute("RESET statement_timeout")
            conn.autocommit = False


def scan(
    ctx: Context, table: Table, span: Span, names: Sequence[str] | None, chunk_rows: int
) -> Iterator[pa.Table]:
    """Rows of a range in Arrow chunks of the table's schema, by name then time."""
    found = _where(ctx, table, span, names)
    if found is None:
        return
    where, params = found
    spec = _SPECS[table]
    query = statement(
        "SELECT {columns} FROM {source} WHERE {where} ORDER BY {name}, {time}",
        columns=spec.columns,
        source=statement(spec.source, t=spec.table),
        where=where,
        name=sql.Identifier("r", spec.name),
        time=sql.Identifier("r", spec.time),
    )
    with ctx.pool.connection(f"export {table} rows") as conn, conn.transaction():
        conn.execute("SET LOCAL statement_timeout = 0")
        with conn.cursor(name="werk_scan", binary=True) as cur:
            cur.itersize = max(chunk_rows, 1)
            cur.execute(query, params)
            while rows := cur.fetchmany(max(chunk_rows, 1)):
                yield _arrow(table, rows)


def _arrow(table: Table, rows: list[tuple[Any, ...]]) -> pa.Table:
    schema = SCHEMAS[table]
    columns = list(zip(*rows, strict=True))
    return pa.Table.from_arrays(
        [pa.array(column, type=field.type) for column, field in zip(columns, schema, strict=True)],
        schema=schema,
    )
