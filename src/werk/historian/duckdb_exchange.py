"""Moving rows in and out of the DuckDB historian as Arrow tables of `layers.SCHEMAS`."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Final

import duckdb
import pyarrow as pa

from werk.core.errors import ValidationFailed
from werk.historian.duckdb_raw import add_batch
from werk.historian.duckdb_schema import US, State, ceil_us, query, registered, scalar
from werk.historian.layers import SCHEMAS, Table

_SCAN: Final = {
    Table.RAW: """
        SELECT t.path AS tag, r.ts, m.ingest_ts, r.value, r.text,
               coalesce(t.boolean AND r.value IS NOT NULL, false) AS boolean, r.quality,
               m.msg_id
        FROM raw r JOIN messages m USING (msg_seq) JOIN tags t USING (tag_id)
        WHERE r.ts >= make_timestamp($start) AND r.ts < make_timestamp($end)
          AND ($all OR list_contains($ids, r.tag_id))""",
    Table.PROCESSED: """
        SELECT t.path AS tag, p.ts, m.ingest_ts, p.value, p.text,
               coalesce(t.boolean AND p.value IS NOT NULL, false) AS boolean, p.quality,
               p.flags, m.msg_id
        FROM processed p JOIN messages m USING (msg_seq) JOIN tags t USING (tag_id)
        WHERE p.ts >= make_timestamp($start) AND p.ts < make_timestamp($end)
          AND ($all OR list_contains($ids, p.tag_id))""",
    Table.ROLLUPS: """
        SELECT t.path AS tag, r.width_s, r.start, r.count, r.min, r.max, r.sum, r.first,
               r.last, r.first_ts, r.last_ts, r.flagged, r.bad
        FROM rollups r JOIN tags t USING (tag_id)
        WHERE r.start >= make_timestamp($start) AND r.start < make_timestamp($end)
          AND ($all OR list_contains($ids, r.tag_id))""",
    Table.KPIS: """
        SELECT name, ts, value, unit, source, lineage FROM kpis
        WHERE ts >= make_timestamp($start) AND ts < make_timestamp($end)
          AND ($all OR list_contains($names, name))""",
    Table.RECORDS: """
        SELECT dataset, key, ts, ingest_ts, payload, msg_id, source FROM records
        WHERE ts >= make_timestamp($start) AND ts < make_timestamp($end)
          AND ($all OR list_contains($names, dataset))""",
}
_ESTIMATE: Final = {
    Table.RAW: "SELECT count(*) FROM raw WHERE ts >= make_timestamp(?) AND ts < make_timestamp(?)",
    Table.PROCESSED: """SELECT count(*) FROM processed
        WHERE ts >= make_timestamp(?) AND ts < make_timestamp(?)""",
    Table.ROLLUPS: """SELECT count(*) FROM rollups
        WHERE start >= make_timestamp(?) AND start < make_timestamp(?)""",
    Table.KPIS: """SELECT count(*) FROM kpis
        WHERE ts >= make_timestamp(?) AND ts < make_timestamp(?)""",
    Table.RECORDS: """SELECT count(*) FROM records
        WHERE ts >= make_timestamp(?) AND ts < make_timestamp(?)""",
}

_LOADING: Final = {
    Table.RAW: """
        CREATE OR REPLACE TEMP TABLE loading AS
        SELECT s.* EXCLUDE (ord) FROM staged s ANTI JOIN (
            SELECT r.tag_id, r.ts, m.msg_id FROM raw r JOIN messages m USING (msg_seq)
            WHERE r.ts BETWEEN (SELECT min(ts) FROM staged) AND (SELECT max(ts) FROM staged)
        ) USING (tag_id, ts, msg_id)
        QUALIFY row_number() OVER (PARTITION BY s.tag_id, s.ts, s.msg_id ORDER BY s.ord) = 1""",
    Table.PROCESSED: """
        CREATE OR REPLACE TEMP TABLE loading AS
        SELECT s.* EXCLUDE (ord) FROM staged s ANTI JOIN (
            SELECT tag_id, ts FROM processed
            WHERE ts BETWEEN (SELECT min(ts) FROM staged) AND (SELECT max(ts) FROM staged)
        ) USING (tag_id, ts)
        QUALIFY row_number() OVER (PARTITION BY s.tag_id, s.ts ORDER BY s.ord) = 1""",
}
_STORE_LOADED: Final = {
    Table.RAW: (
        """INSERT INTO raw SELECT l.tag_id, l.ts, l.value, l.text, l.quality, s.msg_seq
           FROM loading l JOIN seqs s USING (msg_id, ingest_ts)""",
        """INSERT INTO latest_raw
           SELECT tag_id, s.ts, s.value, s.text, s.quality, s.msg_id, s.ingest_ts FROM (
               SELECT tag_id, arg_max({'ts': ts, 'value': value, 'text': text,
                   'quality': quality, 'msg_id': msg_id, 'ingest_ts': ingest_ts}, ts) AS s
               FROM loading GROUP BY tag_id)
           ON CONFLICT (tag_id) DO UPDATE SET ts = excluded.ts, value = excluded.value,
               text = excluded.text, quality = excluded.quality, msg_id = excluded.msg_id,
               ingest_ts = excluded.ingest_ts
           WHERE excluded.ts >= latest_raw.ts""",
    ),
    Table.PROCESSED: (
        """INSERT INTO processed
           SELECT l.tag_id, l.ts, l.value, l.text, l.quality, l.flags, s.msg_seq
           FROM loading l JOIN seqs s USING (msg_id, ingest_ts)""",
        """INSERT INTO latest_processed
           SELECT tag_id, s.ts, s.value, s.text, s.quality, s.flags, s.msg_id, s.ingest_ts FROM (
               SELECT tag_id, arg_max({'ts': ts, 'value': value, 'text': text,
                   'quality': quality, 'flags': flags, 'msg_id': msg_id,
                   'ingest_ts': ingest_ts}, ts) AS s
               FROM loading GROUP BY tag_id)
           ON CONFLICT (tag_id) DO UPDATE SET ts = excluded.ts, value = excluded.value,
               text = excluded.text, quality = excluded.quality, flags = excluded.flags,
               msg_id = excluded.msg_id, ingest_ts = excluded.ingest_ts
           WHERE excluded.ts >= latest_processed.ts""",
    ),
}
_LOAD_OTHER: Final = {
    Table.ROLLUPS: """
        INSERT INTO rollups SELECT s.* EXCLUDE (ord) FROM staged s
        ANTI JOIN (SELECT tag_id, width_s, start FROM rollups
                   WHERE start BETWEEN (SELECT min(start) FROM staged)
                                   AND (SELECT max(start) FROM staged))
            USING (tag_id, width_s, start)
        QUALIFY row_number() OVER (PARTITION BY s.tag_id, s.width_s, s.start ORDER BY s.ord) = 1""",
    Table.KPIS: """
        INSERT INTO kpis SELECT s.* EXCLUDE (ord) FROM staged s
        ANTI JOIN (SELECT name, ts FROM kpis
                   WHERE ts BETWEEN (SELECT min(ts) FROM staged) AND (SELECT max(ts) FROM staged))
            USING (name, ts)
        QUALIFY row_number() OVER (PARTITION BY s.name, s.ts ORDER BY s.ord) = 1""",
    Table.RECORDS: """
        INSERT INTO records SELECT s.* EXCLUDE (ord) FROM staged s
        ANTI JOIN (SELECT dataset, key, ts, msg_id FROM records
                   WHERE ts BETWEEN (SELECT min(ts) FROM staged) AND (SELECT max(ts) FROM staged))
            USING (dataset, key, ts, msg_id)
        QUALIFY row_number() OVER (PARTITION BY s.dataset, s.key, s.ts, s.msg_id
                                   ORDER BY s.ord) = 1""",
}
_NOT_NULL: Final = {
    Table.RAW: ("tag", "ts", "ingest_ts", "quality", "msg_id"),
    Table.PROCESSED: ("tag", "ts", "ingest_ts", "quality", "flags", "msg_id"),
    Table.ROLLUPS: ("tag", "width_s", "start", "count", "sum", "flagged", "bad"),
    Table.KPIS: ("name", "ts", "value", "unit", "source", "lineage"),
    Table.RECORDS: ("dataset", "key", "ts", "ingest_ts", "payload", "msg_id", "source"),
}


def scan_params(
    state: State, table: Table, span: tuple[int, int], names: Sequence[str] | None
) -> dict[str, Any]:
    """Parameters of the scan query of `table`."""
    params: dict[str, Any] = {
        "start": ceil_us(span[0]),
        "end": ceil_us(span[1]),
        "all": names is None,
    }
    if table in (Table.KPIS, Table.RECORDS):
        params["names"] = list(names or [])
    else:
        params["ids"] = state.tag_ids(names or [])
    return params


def scan(
    cur: duckdb.DuckDBPyConnection, table: Table, params: dict[str, Any], chunk_rows: int
) -> Iterator[pa.Table]:
    """Chunks of the scan, each cast to the table's exchange schema."""
    schema = SCHEMAS[table]
    relation = query(cur, _SCAN[table], params)
    reader: pa.RecordBatchReader = relation.to_arrow_reader(max(chunk_rows, 1))
    for batch in reader:
        if batch.num_rows:
            yield pa.Table.from_batches([batch]).cast(schema)


def estimate(cur: duckdb.DuckDBPyConnection, table: Table, span: tuple[int, int]) -> int:
    """Rows a scan of the range would yield."""
    return scalar(cur, _ESTIMATE[table], [ceil_us(span[0]), ceil_us(span[1])])


def check_schema(table: Table, data: pa.Table) -> None:
    """Refuse data not of the table's exchange schema, or with gaps in required columns."""
    expected = SCHEMAS[table]
    found = data.schema
    if found.names != expected.names or any(
        not f.type.equals(e.type) for f, e in zip(found, expected, strict=True)
    ):
        raise ValidationFailed(
            f"{table.value} rows must have the schema {expected.to_string()}, "
            f"not {found.to_string(show_schema_metadata=False)}",
            code="bad_schema",
        )
    gaps = [name for name in _NOT_NULL[table] if data.column(name).null_count]
    if gaps:
        raise ValidationFailed(
            f"{table.value} rows have empty {', '.join(gaps)}", code="bad_rows", columns=gaps
        )


def load(cur: duckdb.DuckDBPyConnection, state: State, table: Table, data: pa.Table) -> int:
    """Append rows not stored yet (in the caller's transaction); return how many."""
    if table in (Table.RAW, Table.PROCESSED, Table.ROLLUPS):
        state.register(cur, data.column("tag").to_pylist(), _boolean_tags(table, data))
    staged = _staged(state, table, data)
    with registered(cur, "staged", staged):
        if table in _LOAD_OTHER:
            return scalar(cur, _LOAD_OTHER[table], [])
        cur.execute(_LOADING[table])
    return _store_loaded(cur, state, table)


def _store_loaded(cur: duckdb.DuckDBPyConnection, state: State, table: Table) -> int:
    added = scalar(cur, "SELECT count(*) FROM loading", [])
    if added:
        first = state.next_seq
        end = _assign_seqs(cur, state, reuse=table is Table.PROCESSED)
        for statement in _STORE_LOADED[table]:
            cur.execute(statement)
        cur.execute("DROP TABLE seqs")
        if table is Table.RAW:
            add_batch(cur, state, first, end, added)
        state.next_seq = end
    cur.execute("DROP TABLE loading")
    return added


def _boolean_tags(table: Table, data: pa.Table) -> set[str]:
    if table is Table.ROLLUPS:
        return set()
    tags = data.column("tag").to_pylist()
    flags = data.column("boolean").to_pylist()
    return {t for t, b in zip(tags, flags, strict=True) if b}


def _staged(state: State, table: Table, data: pa.Table) -> pa.Table:
    """The rows with tag ids for paths, naive timestamps and their position (`ord`)."""
    columns: dict[str, Any] = {}
    for field in SCHEMAS[table]:
        column = data.column(field.name)
        if field.name == "tag":
            columns["tag_id"] = pa.array(
                list(map(state.ids.__getitem__, column.to_pylist())), pa.int32()
            )
        elif field.name == "boolean":
            continue
        elif pa.types.is_timestamp(field.type):
            columns[field.name] = column.cast(US)
        else:
            columns[field.name] = column
    columns["ord"] = pa.array(range(data.num_rows), pa.int64())
    return pa.table(columns)


_PAIRS: Final = (
    "CREATE OR REPLACE TEMP TABLE pairs AS SELECT DISTINCT msg_id, ingest_ts FROM loading"
)
_KNOWN_SEQS: Final = """
    CREATE OR REPLACE TEMP TABLE seqs AS
    SELECT p.msg_id, p.ingest_ts, min(m.msg_seq) AS msg_seq
    FROM pairs p JOIN messages m ON m.msg_id = p.msg_id AND m.ingest_ts = p.ingest_ts
    WHERE m.ingest_ts BETWEEN (SELECT min(ingest_ts) FROM pairs)
                          AND (SELECT max(ingest_ts) FROM pairs)
    GROUP BY p.msg_id, p.ingest_ts
"""
_NO_SEQS: Final = """
    CREATE OR REPLACE TEMP TABLE seqs (msg_id BIGINT, ingest_ts TIMESTAMP, msg_seq BIGINT)
"""
_NEW_SEQS: Final = """
    INSERT INTO seqs SELECT p.msg_id, p.ingest_ts,
        ? + row_number() OVER (ORDER BY p.ingest_ts, p.msg_id) - 1
    FROM pairs p ANTI JOIN seqs s USING (msg_id, ingest_ts)
"""


def _assign_seqs(cur: duckdb.DuckDBPyConnection, state: State, *, reuse: bool) -> int:
    """Fill temp table `seqs(msg_id, ingest_ts, msg_seq)` for the messages being loaded.

    With `reuse` a message already stored keeps its number; the others are added to
    `messages` with the next numbers. Returns the first number after those given.
    """
    cur.execute(_PAIRS)
    cur.execute(_KNOWN_SEQS if reuse else _NO_SEQS)
    new = scalar(cur, _NEW_SEQS, [state.next_seq])
    cur.execute(
        "INSERT INTO messages SELECT msg_seq, msg_id, ingest_ts FROM seqs WHERE msg_seq >= ?",
        [state.next_seq],
    )
    cur.execute("DROP TABLE pairs")
    return state.next_seq + new
