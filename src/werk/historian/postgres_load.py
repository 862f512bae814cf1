"""Bulk appends to the PostgreSQL historian: Arrow tables through binary COPY.

Raw writes COPY straight into `raw`. Everything else is copied into a temporary table of
the session first and then inserted with the natural key deciding: refined rows replace
stored ones, loaded rows already stored are skipped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql

from werk.core.errors import ValidationFailed
from werk.historian.layers import SCHEMAS, ProcessedColumns, Table
from werk.historian.models import RawColumns
from werk.historian.postgres_copy import Columns, copy_into
from werk.historian.postgres_pool import Pool, scalar, stamp
from werk.historian.postgres_schema import SPAN_US, Layout, statement
from werk.historian.postgres_tags import TagDictionary

SAMPLE_COPY: Final[Columns] = (
    ("tag_id", "int4"), ("ts", "ts"), ("ingest_ts", "ts"), ("value", "float8"),
    ("text", "text"), ("quality", "int2"), ("msg_id", "int8"),
)  # fmt: skip
RAW_COPY: Final[Columns] = (*SAMPLE_COPY, ("batch", "int8"))
_PROCESSED_COPY: Final[Columns] = (*SAMPLE_COPY, ("flags", "int4"), ("ord", "int8"))
_OTHER_COPY: Final[dict[Table, Columns]] = {
    Table.ROLLUPS: (
        ("tag_id", "int4"), ("width_s", "int4"), ("start", "ts"), ("count", "int8"),
        ("min", "float8"), ("max", "float8"), ("sum", "float8"), ("first", "float8"),
        ("last", "float8"), ("first_ts", "ts"), ("last_ts", "ts"), ("flagged", "int8"),
        ("bad", "int8"),
    ),
    Table.KPIS: (
        ("name", "text"), ("ts", "ts"), ("value", "float8"), ("unit", "text"),
        ("source", "text"), ("lineage", "text"),
    ),
    Table.RECORDS: (
        ("dataset", "text"), ("key", "text"), ("ts", "ts"), ("ingest_ts", "ts"),
        ("payload", "text"), ("msg_id", "int8"), ("source", "text"),
    ),
}  # fmt: skip
_STAGING: Final = {
    "raw": "CREATE TEMP TABLE IF NOT EXISTS load_raw (tag_id integer, ts timestamptz, "
    "ingest_ts timestamptz, value float8, text text, quality smallint, msg_id bigint) "
    "ON COMMIT DELETE ROWS",
    "processed": "CREATE TEMP TABLE IF NOT EXISTS load_processed "
    "(LIKE {s}.processed, ord bigint) ON COMMIT DELETE ROWS",
    "rollups": "CREATE TEMP TABLE IF NOT EXISTS load_rollups (LIKE {s}.rollups) "
    "ON COMMIT DELETE ROWS",
    "kpis": "CREATE TEMP TABLE IF NOT EXISTS load_kpis (LIKE {s}.kpis) ON COMMIT DELETE ROWS",
    "records": "CREATE TEMP TABLE IF NOT EXISTS load_records (LIKE {s}.records) "
    "ON COMMIT DELETE ROWS",
}
_PROCESSED_INSERT: Final = """
    INSERT INTO {s}.processed (ts, ingest_ts, value, msg_id, tag_id, flags, quality, text)
    SELECT DISTINCT ON (tag_id, ts) ts, ingest_ts, value, msg_id, tag_id, flags, quality, text
    FROM pg_temp.load_processed ORDER BY tag_id, ts, ord DESC
    ON CONFLICT (tag_id, ts) DO {action}
"""
_REPLACE: Final = (
    "UPDATE SET ingest_ts = EXCLUDED.ingest_ts, value = EXCLUDED.value, "
    "msg_id = EXCLUDED.msg_id, flags = EXCLUDED.flags, quality = EXCLUDED.quality, "
    "text = EXCLUDED.text"
)
_RAW_INSERT: Final = """
    WITH added AS (
        INSERT INTO {s}.raw (tag_id, ts, ingest_ts, value, text, quality, msg_id, batch)
        SELECT DISTINCT ON (tag_id, ts, msg_id)
            tag_id, ts, ingest_ts, value, text, quality, msg_id, %(batch)s
        FROM pg_temp.load_raw l
        WHERE NOT EXISTS (
            SELECT 1 FROM {s}.raw r
            WHERE r.tag_id = l.tag_id AND r.ts = l.ts AND r.msg_id = l.msg_id
        )
        ORDER BY tag_id, ts, msg_id
        RETURNING ts, ingest_ts
    )
    SELECT count(*), min(ts), max(ts), max(ingest_ts) FROM added
"""
_KEYS: Final = {
    Table.ROLLUPS: "tag_id, width_s, start",
    Table.KPIS: "name, ts",
    Table.RECORDS: "dataset, key, ts, msg_id",
}


@dataclass(frozen=True, slots=True)
class Context:
    """What the bulk and lifecycle operations share with the store."""

    pool: Pool
    tags: TagDictionary
    layout: Layout


def micros(stamps_ns: list[int]) -> np.ndarray[Any, Any]:
    """Nanosecond stamps as microseconds, truncated as the contract says (floor)."""
    return np.asarray(stamps_ns, dtype=np.int64) // 1000


def spans(ts_us: np.ndarray[Any, Any]) -> list[int]:
    """The 7-day spans a set of stamps falls into."""
    return [int(s) for s in np.unique(ts_us // SPAN_US)]


def sample_table(rows: RawColumns, ids: Mapping[str, int], ts_us: np.ndarray[Any, Any]) -> pa.Table:
    """Raw columns as an Arrow table in the column order of `SAMPLE_COPY`."""
    return pa.table(
        {
            "tag_id": pa.array(list(map(ids.__getitem__, rows.tag)), pa.int32()),
            "ts": pa.array(ts_us, pa.int64()),
            "ingest_ts": pa.array(micros(rows.ingest_ns), pa.int64()),
            "value": pa.array(rows.value, pa.float64()),
            "text": pa.array(rows.text, pa.string()),
            "quality": pa.array(rows.quality, pa.int16()),
            "msg_id": pa.array(rows.msg_id, pa.int64()),
        }
    )


def processed_table(
    rows: ProcessedColumns, ids: Mapping[str, int], ts_us: np.ndarray[Any, Any]
) -> pa.Table:
    """Processed columns as an Arrow table in the column order of `_PROCESSED_COPY`."""
    data = sample_table(rows, ids, ts_us)
    data = data.append_column("flags", pa.array(rows.flags, pa.int32()))
    return data.append_column("ord", pa.array(np.arange(len(rows)), pa.int64()))


def upsert_processed(cur: psycopg.Cursor[Any], data: pa.Table, *, replace: bool) -> int:
    """Insert processed rows; on a stored (tag, ts) replace it or keep it. Return rows added."""
    stage(cur, "processed", _PROCESSED_COPY, data)
    action = _REPLACE if replace else "NOTHING"
    cur.execute(statement(_PROCESSED_INSERT, action=action))
    return max(cur.rowcount, 0)


def stage(cur: psycopg.Cursor[Any], name: str, columns: Columns, data: pa.Table) -> None:
    """COPY rows into the session's temporary table for `name`."""
    cur.execute(statement(_STAGING[name]))
    copy_into(cur, sql.Identifier("pg_temp", f"load_{name}"), columns, data)


def load(ctx: Context, table: Table, data: pa.Table) -> int:
    """Append rows of a table's Arrow schema, skipping those already stored."""
    data = conform(table, data)
    if data.num_rows == 0:
        return 0
    if table in (Table.RAW, Table.PROCESSED):
        return _load_samples(ctx, table, data)
    return _load_other(ctx, table, data)


def _load_other(ctx: Context, table: Table, data: pa.Table) -> int:
    """Rollups, KPIs or records: staged, then inserted unless their key is stored."""
    with ctx.pool.transaction(f"load {table} rows") as cur:
        cur.execute("SET LOCAL statement_timeout = 0")
        registered = None
        if table is Table.ROLLUPS:
            ids, registered = ctx.tags.resolve(cur, data["tag"].to_pylist(), set())
            data = _with_tag_ids(data, ids)
        stage(cur, table.value, _OTHER_COPY[table], data)
        cur.execute(
            statement(
                "INSERT INTO {s}.{t} SELECT * FROM {staged} ON CONFLICT ({key}) DO NOTHING",
                t=table.value,
                staged=sql.Identifier("pg_temp", f"load_{table.value}"),
                key=_KEYS[table],
            )
        )
        added = max(cur.rowcount, 0)
    if registered is not None:
        ctx.tags.remember(registered)
    return added


def conform(table: Table, data: pa.Table) -> pa.Table:
    """The data with exactly the table's Arrow schema, or a validation error."""
    schema = SCHEMAS[table]
    try:
        data = data.select(schema.names).cast(schema)
    except (KeyError, ValueError, TypeError, pa.ArrowException) as exc:
        raise ValidationFailed(
            f"data for {table} needs the columns {', '.join(schema.names)}: {exc}",
            code="bad_schema",
            table=str(table),
        ) from exc
    # the name and the time are needed before PostgreSQL sees the rows (tag ids, partitions)
    gaps = [name for name in schema.names[:3] if data[name].null_count]
    if gaps:
        raise ValidationFailed(
            f"data for {table} has empty {', '.join(gaps)}", code="bad_schema", table=str(table)
        )
    return data


def _load_samples(ctx: Context, table: Table, data: pa.Table) -> int:
    ts_us = data["ts"].cast(pa.int64()).to_numpy()
    ctx.layout.ensure(ctx.pool, table.value, spans(ts_us))
    booleans = set(pc.filter(data["tag"], pc.fill_null(data["boolean"], False)).to_pylist())
    with ctx.layout.guard(table.value), ctx.pool.transaction(f"load {table} rows") as cur:
        cur.execute("SET LOCAL statement_timeout = 0")
        ids, registered = ctx.tags.resolve(cur, data["tag"].to_pylist(), booleans)
        rows = _with_tag_ids(data, ids)
        if table is Table.RAW:
            added = _load_raw(cur, rows)
        else:
            rows = rows.append_column("ord", pa.array(np.arange(rows.num_rows), pa.int64()))
            added = upsert_processed(
                cur, rows.select([n for n, _ in _PROCESSED_COPY]), replace=False
            )
    ctx.tags.remember(registered)
    return added


def _load_raw(cur: psycopg.Cursor[Any], rows: pa.Table) -> int:
    stage(cur, "raw", SAMPLE_COPY, rows.select([n for n, _ in SAMPLE_COPY]))
    cur.execute(statement("SELECT value + 1 FROM {s}.meta WHERE key = 'batch' FOR UPDATE"))
    batch = int(scalar(cur))
    cur.execute(statement(_RAW_INSERT), {"batch": batch})
    row = cur.fetchone()
    if row is None or not row[0]:
        return 0
    added, low, high, ingest = row
    cur.execute(statement("UPDATE {s}.meta SET value = %s WHERE key = 'batch'"), [batch])
    cur.execute(
        statement("INSERT INTO {s}.batches VALUES (%s, %s, %s, %s, %s)"),
        [batch, added, stamp(low), stamp(high), stamp(ingest)],
    )
    return int(added)


def _with_tag_ids(data: pa.Table, ids: Mapping[str, int]) -> pa.Table:
    """Replace the `tag` column by the tags' ids (first column, `tag_id`)."""
    tag_ids = pa.array(list(map(ids.__getitem__, data["tag"].to_pylist())), pa.int32())
    return data.drop_columns(["tag"]).add_column(0, "tag_id", tag_ids)
