"""Retention and compaction on DuckDB: delete old rows, rewrite ranges sorted and unique.

Compaction sorts a range by name and time, so that each row group holds few tags and
DuckDB's lightweight compression (RLE, bit packing, ALP) packs the columns tightly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import duckdb

from werk.historian.duckdb_schema import State, ceil_us, scalar
from werk.historian.layers import Table

_WHERE: Final = {
    Table.RAW: """ts < make_timestamp($before) AND ($all OR list_contains($ids, tag_id))""",
    Table.PROCESSED: """ts < make_timestamp($before) AND ($all OR list_contains($ids, tag_id))""",
    Table.ROLLUPS: """start < make_timestamp($before)
        AND ($all OR list_contains($ids, tag_id))""",
    Table.KPIS: """ts < make_timestamp($before) AND ($all OR list_contains($names, name))""",
    Table.RECORDS: """ts < make_timestamp($before)
        AND ($all OR list_contains($names, dataset))""",
}
_DELETE: Final = {
    table: "DELETE FROM " + table.value + " WHERE " + _WHERE[table] for table in Table
}
_LATEST: Final = {
    Table.RAW: "DELETE FROM latest_raw WHERE " + _WHERE[Table.RAW],
    Table.PROCESSED: "DELETE FROM latest_processed WHERE " + _WHERE[Table.PROCESSED],
}
# Messages whose every sample is deleted go too; only those the deleted rows named.
_GONE: Final = {
    Table.RAW: "CREATE OR REPLACE TEMP TABLE gone AS SELECT DISTINCT msg_seq FROM raw WHERE "
    + _WHERE[Table.RAW],
    Table.PROCESSED: "CREATE OR REPLACE TEMP TABLE gone AS "
    "SELECT DISTINCT msg_seq FROM processed WHERE " + _WHERE[Table.PROCESSED],
}
_UNUSED_MESSAGES: Final = """
    DELETE FROM messages WHERE msg_seq IN (
        SELECT g.msg_seq FROM gone g
        ANTI JOIN (SELECT msg_seq FROM raw
                   WHERE msg_seq BETWEEN (SELECT min(msg_seq) FROM gone)
                                     AND (SELECT max(msg_seq) FROM gone)) r USING (msg_seq)
        ANTI JOIN (SELECT msg_seq FROM processed
                   WHERE msg_seq BETWEEN (SELECT min(msg_seq) FROM gone)
                                     AND (SELECT max(msg_seq) FROM gone)) p USING (msg_seq))
"""

_RANGE: Final = {
    Table.RAW: """ts >= make_timestamp($start) AND ts < make_timestamp($end)
        AND ($all OR list_contains($ids, tag_id))""",
    Table.PROCESSED: """ts >= make_timestamp($start) AND ts < make_timestamp($end)
        AND ($all OR list_contains($ids, tag_id))""",
    Table.ROLLUPS: """start >= make_timestamp($start) AND start < make_timestamp($end)
        AND ($all OR list_contains($ids, tag_id))""",
    Table.KPIS: """ts >= make_timestamp($start) AND ts < make_timestamp($end)
        AND ($all OR list_contains($names, name))""",
    Table.RECORDS: """ts >= make_timestamp($start) AND ts < make_timestamp($end)
        AND ($all OR list_contains($names, dataset))""",
}
# Raw rows are duplicates when tag, time, value, quality and message (id and ingest
# time) agree; the copy with the lowest message number stays.
_KEEP: Final = {
    Table.RAW: """CREATE OR REPLACE TEMP TABLE compacting AS
        SELECT r.tag_id, r.ts, r.value, r.text, r.quality, min(r.msg_seq) AS msg_seq
        FROM raw r JOIN messages m USING (msg_seq) WHERE """
    + _RANGE[Table.RAW]
    + " GROUP BY r.tag_id, r.ts, r.value, r.text, r.quality, m.msg_id, m.ingest_ts",
    **{
        table: "CREATE OR REPLACE TEMP TABLE compacting AS SELECT DISTINCT * FROM "
        + table.value
        + " WHERE "
        + _RANGE[table]
        for table in (Table.PROCESSED, Table.ROLLUPS, Table.KPIS, Table.RECORDS)
    },
}
_CLEAR: Final = {table: "DELETE FROM " + table.value + " WHERE " + _RANGE[table] for table in Table}
_ORDER: Final = {
    Table.RAW: "tag_id, ts, msg_seq",
    Table.PROCESSED: "tag_id, ts, msg_seq",
    Table.ROLLUPS: "tag_id, width_s, start",
    Table.KPIS: "name, ts",
    Table.RECORDS: "dataset, key, ts, ingest_ts, msg_id",
}
_REWRITE: Final = {
    table: "INSERT INTO " + table.value + " SELECT * FROM compacting ORDER BY " + _ORDER[table]
    for table in Table
}


def name_params(state: State, table: Table, names: Sequence[str] | None) -> dict[str, Any]:
    """The name filter of a lifecycle statement: tag ids or KPI and dataset names."""
    if table in (Table.KPIS, Table.RECORDS):
        return {"all": names is None, "names": list(names or [])}
    return {"all": names is None, "ids": state.tag_ids(names or [])}


def delete(
    cur: duckdb.DuckDBPyConnection,
    state: State,
    table: Table,
    before_ns: int,
    names: Sequence[str] | None,
) -> int:
    """Delete rows older than `before_ns` (in the caller's transaction); return how many."""
    params = {"before": ceil_us(before_ns), **name_params(state, table, names)}
    if table in _GONE:
        cur.execute(_GONE[table], params)
    deleted = scalar(cur, _DELETE[table], params)
    if table in _GONE:
        cur.execute(_LATEST[table], params)
        if deleted:
            cur.execute(_UNUSED_MESSAGES)
        cur.execute("DROP TABLE gone")
    return deleted


def compact(
    cur: duckdb.DuckDBPyConnection,
    state: State,
    table: Table,
    span: tuple[int, int],
    names: Sequence[str] | None,
) -> int:
    """Rewrite a range sorted and without exact duplicates (in the caller's transaction)."""
    params = {
        "start": ceil_us(span[0]),
        "end": ceil_us(span[1]),
        **name_params(state, table, names),
    }
    cur.execute(_KEEP[table], params)
    kept = scalar(cur, "SELECT count(*) FROM compacting", [])
    cur.execute(_CLEAR[table], params)
    cur.execute(_REWRITE[table])
    cur.execute("DROP TABLE compacting")
    return kept
