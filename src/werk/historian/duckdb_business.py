"""KPIs and business records on DuckDB."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final

import duckdb
import pyarrow as pa

from werk.core.errors import ValidationFailed
from werk.historian.duckdb_schema import (
    ceil_us,
    checked_rows,
    micros,
    registered,
    scalar,
    us_array,
)
from werk.historian.layers import Kpi, Layer, LineageRef, Record

_STAGE_KPIS: Final = """
    CREATE OR REPLACE TEMP TABLE incoming_kpis AS
    SELECT name, ts, value, unit, source, lineage FROM staged_kpis
    QUALIFY row_number() OVER (PARTITION BY name, ts ORDER BY ord DESC) = 1
"""
_REPLACE_KPIS: Final = (
    """DELETE FROM kpis k USING incoming_kpis i WHERE k.name = i.name AND k.ts = i.ts""",
    "INSERT INTO kpis SELECT * FROM incoming_kpis",
)
_KPIS: Final = """
    SELECT name, epoch_us(ts), value, unit, source, lineage FROM kpis
    WHERE name = ? AND ts >= make_timestamp(?) AND ts < make_timestamp(?)
    ORDER BY ts LIMIT ?
"""

_NEW_RECORDS: Final = """
    INSERT INTO records
    SELECT s.dataset, s.key, s.ts, s.ingest_ts, s.payload, s.msg_id, s.source
    FROM staged_records s
    ANTI JOIN (SELECT * FROM records
               WHERE ts BETWEEN (SELECT min(ts) FROM staged_records)
                            AND (SELECT max(ts) FROM staged_records)) r
      USING (dataset, key, ts, msg_id)
    QUALIFY row_number() OVER (PARTITION BY s.dataset, s.key, s.ts, s.msg_id ORDER BY s.ord) = 1
"""
_RECORDS: Final = {
    False: """
        SELECT dataset, key, epoch_us(ts), epoch_us(ingest_ts), payload, msg_id, source
        FROM records
        WHERE dataset = $dataset AND ts >= make_timestamp($start) AND ts < make_timestamp($end)
          AND ($key IS NULL OR key = $key)
        ORDER BY ts, ingest_ts, key, msg_id LIMIT $limit""",
    True: """
        SELECT dataset, key, epoch_us(ts), epoch_us(ingest_ts), payload, msg_id, source
        FROM records
        WHERE dataset = $dataset AND ts >= make_timestamp($start) AND ts < make_timestamp($end)
          AND ($key IS NULL OR key = $key)
        QUALIFY row_number() OVER (PARTITION BY key ORDER BY ts DESC, ingest_ts DESC,
                                   msg_id DESC) = 1
        ORDER BY ts, ingest_ts, key, msg_id LIMIT $limit""",
}


def write_kpis(cur: duckdb.DuckDBPyConnection, kpis: Sequence[Kpi]) -> int:
    """Store KPI values (in the caller's transaction); the same name and ts replaces."""
    with checked_rows("KPI values"):
        staged = pa.table(
            {
                "name": pa.array([k.name for k in kpis], pa.string()),
                "ts": us_array(micros([k.ts_ns for k in kpis])),
                "value": pa.array([k.value for k in kpis], pa.float64()),
                "unit": pa.array([k.unit for k in kpis], pa.string()),
                "source": pa.array([k.source for k in kpis], pa.string()),
                "lineage": pa.array([lineage_json(k.lineage) for k in kpis], pa.string()),
                "ord": pa.array(range(len(kpis)), pa.int64()),
            }
        )
    with registered(cur, "staged_kpis", staged):
        cur.execute(_STAGE_KPIS)
    for statement in _REPLACE_KPIS:
        cur.execute(statement)
    stored = scalar(cur, "SELECT count(*) FROM incoming_kpis", [])
    cur.execute("DROP TABLE incoming_kpis")
    return stored


def kpis(cur: duckdb.DuckDBPyConnection, name: str, span: tuple[int, int], limit: int) -> list[Kpi]:
    """Values of one KPI in [start, end), oldest first."""
    if limit <= 0:
        return []
    rows = cur.execute(_KPIS, [name, ceil_us(span[0]), ceil_us(span[1]), limit]).fetchall()
    return [kpi(row) for row in rows]


def kpi(row: tuple[Any, ...]) -> Kpi:
    """A KPI from (name, ts_us, value, unit, source, lineage JSON)."""
    name, ts_us, value, unit, source, lineage = row
    return Kpi(name, ts_us * 1000, value, unit, source, parse_lineage(lineage))


def lineage_json(refs: Sequence[LineageRef]) -> str:
    """Lineage as the JSON list the exchange schema names."""
    items = [
        {"layer": r.layer.value, "tag": r.tag, "start_ns": r.start_ns, "end_ns": r.end_ns}
        for r in refs
    ]
    return json.dumps(items, separators=(",", ":"))


def parse_lineage(text: str) -> tuple[LineageRef, ...]:
    """Lineage from its JSON list."""
    items = json.loads(text) if text else []
    return tuple(
        LineageRef(Layer(i["layer"]), i["tag"], int(i["start_ns"]), int(i["end_ns"])) for i in items
    )


def write_records(cur: duckdb.DuckDBPyConnection, records: Sequence[Record]) -> int:
    """Append records not stored yet (in the caller's transaction); return how many."""
    with checked_rows("records"):
        staged = pa.table(
            {
                "dataset": pa.array([r.dataset for r in records], pa.string()),
                "key": pa.array([r.key for r in records], pa.string()),
                "ts": us_array(micros([r.ts_ns for r in records])),
                "ingest_ts": us_array(micros([r.ingest_ns for r in records])),
                "payload": pa.array([payload_json(r) for r in records], pa.string()),
                "msg_id": pa.array([r.msg_id for r in records], pa.int64()),
                "source": pa.array([r.source for r in records], pa.string()),
                "ord": pa.array(range(len(records)), pa.int64()),
            }
        )
    with registered(cur, "staged_records", staged):
        return scalar(cur, _NEW_RECORDS, [])


def payload_json(record: Record) -> str:
    """A record's payload as JSON text; refuse what JSON cannot hold."""
    try:
        return json.dumps(record.payload, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValidationFailed(
            f"record {record.dataset}/{record.key}: payload is not JSON: {exc}",
            code="bad_payload",
        ) from exc


def records(
    cur: duckdb.DuckDBPyConnection,
    dataset: str,
    span: tuple[int, int],
    limit: int,
    *,
    key: str | None,
    latest: bool,
) -> list[Record]:
    """Records of a dataset in [start, end), oldest first, optionally one key or newest only."""
    if limit <= 0:
        return []
    params = {
        "dataset": dataset,
        "start": ceil_us(span[0]),
        "end": ceil_us(span[1]),
        "key": key,
        "limit": limit,
    }
    return [record(row) for row in cur.execute(_RECORDS[latest], params).fetchall()]


def record(row: tuple[Any, ...]) -> Record:
    """A record from (dataset, key, ts_us, ingest_us, payload JSON, msg_id, source)."""
    dataset, key, ts_us, ingest_us, payload, msg_id, source = row
    return Record(dataset, key, ts_us * 1000, ingest_us * 1000, json.loads(payload), msg_id, source)


def datasets(cur: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Every dataset with its number of stored records."""
    sql = "SELECT dataset, count(*) FROM records GROUP BY dataset ORDER BY dataset"
    return {name: int(n) for name, n in cur.execute(sql).fetchall()}


def kpi_names(cur: duckdb.DuckDBPyConnection) -> list[str]:
    """Names of every KPI with stored values."""
    rows = cur.execute("SELECT DISTINCT name FROM kpis ORDER BY name").fetchall()
    return [row[0] for row in rows]
