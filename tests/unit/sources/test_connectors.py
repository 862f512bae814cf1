"""File and SQL connectors read what is new, remember it, and refuse what does not fit."""

from __future__ import annotations

import csv
import os
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session, sessionmaker

from werk.core.db import create_db_engine, session_scope, upgrade_schema
from werk.core.errors import Unavailable, ValidationFailed
from werk.sources.config import FileSourceConfig, SqlSourceConfig
from werk.sources.connector import Batch, Connector
from werk.sources.contracts import BUILTIN_CONTRACTS, Catalog
from werk.sources.files import FileSource
from werk.sources.sql import SqlSource, decode, encode
from werk.sources.validation import ValidRow, validate_row

CATALOG = Catalog(list(BUILTIN_CONTRACTS))
HEADER = "Order No,line,customer_id,sku,quantity,status,ordered_at\n"


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'werk.db'}")
    upgrade_schema(engine)
    yield sessionmaker(engine, expire_on_commit=False)
    engine.dispose()


def drain(connector: Connector, sessions: sessionmaker[Session]) -> list[Batch]:
    """Read every batch and keep what each asks to remember, as the runner does."""
    batches = list(connector.batches(sessions))
    for batch in batches:
        if batch.remember is not None:
            with session_scope(sessions) as session:
                batch.remember(session)
    return batches


def rows_of(batches: list[Batch]) -> list[dict[str, Any]]:
    return [b.columns.apply(r) if b.columns else dict(r) for b in batches for r in b.rows]


def order_lines(count: int, start: int = 1) -> str:
    return "".join(
        f"SO-{n},1,C-7,BRK-200,{n}.5,open,2026-05-01T08:{n % 60:02d}:00Z\n"
        for n in range(start, start + count)
    )


def file_source(folder: Path, **extra: Any) -> FileSource:
    config = FileSourceConfig(
        name="erp-orders", kind="file", dataset="orders", path=str(folder / "orders-*.csv"),
        columns={"Order No": "order_id"}, **extra,
    )  # fmt: skip
    return FileSource(config, CATALOG.get("orders"), chunk_rows=2)


def test_csv_files_load_once_in_chunks_and_again_when_changed(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    first = tmp_path / "orders-1.csv"
    first.write_text(HEADER + order_lines(3))
    (tmp_path / "orders-2.csv").write_text(HEADER + order_lines(1, start=10))
    source = file_source(tmp_path)

    batches = drain(source, sessions)
    data = [b for b in batches if b.rows]
    assert [(b.origin.rsplit("/", 1)[-1], b.lines) for b in data] == [
        ("orders-1.csv", [2, 3]), ("orders-1.csv", [4]), ("orders-2.csv", [2]),
    ]  # fmt: skip
    assert data[1].where(0) == f"{first} line 4"
    assert all(b.text for b in data)
    assert [r["order_id"] for r in rows_of(batches)] == ["SO-1", "SO-2", "SO-3", "SO-10"]
    assert drain(source, sessions) == []  # nothing new

    with first.open("a") as handle:
        handle.write(order_lines(1, start=4))
    again = drain(source, sessions)
    assert [r["order_id"] for r in rows_of(again)] == ["SO-1", "SO-2", "SO-3", "SO-4"]
    stat = first.stat()
    os.utime(first, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert len(rows_of(drain(source, sessions))) == 4  # touched: loaded again


def test_a_file_with_columns_that_do_not_fit_is_an_error_and_retried(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    (tmp_path / "orders-1.csv").write_text("Order No,line,Colour\nSO-1,1,red\n")
    (batch,) = drain(file_source(tmp_path), sessions)
    assert batch.error is not None and "'Colour' are not fields of 'orders'" in batch.error
    (tmp_path / "orders-1.csv").write_text("Order No,line,status\nSO-1,1,open\n")
    (batch,) = drain(file_source(tmp_path), sessions)
    assert batch.error is not None
    assert "no column for the required fields customer_id, ordered_at, quantity, sku" in batch.error
    (again,) = drain(file_source(tmp_path), sessions)  # not remembered: tried again
    assert again.error == batch.error


def test_extra_columns_can_be_ignored_but_extra_cells_are_not(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    (tmp_path / "orders-1.csv").write_text(
        HEADER.replace("\n", ",Colour\n") + "SO-1,1,C-7,BRK-200,2,open,2026-05-01T08:00:00Z,red,x\n"
    )
    batches = drain(file_source(tmp_path, extra_columns="ignore"), sessions)
    (row,) = rows_of(batches)
    assert "Colour" not in row
    outcome = validate_row(CATALOG.get("orders"), row, text=True, now_ns=1_800_000_000 * 10**9)
    assert not isinstance(outcome, ValidRow)
    assert outcome.reason == "unknown_field" and "cell 9 beyond the header" in outcome.detail


CELLS = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.lists(CELLS, min_size=7, max_size=7), min_size=1, max_size=4))
def test_any_csv_text_comes_back_cell_for_cell(
    sessions: sessionmaker[Session], rows: list[list[str]]
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        with (Path(folder) / "orders-1.csv").open("w", newline="", encoding="utf-8") as handle:
            handle.write(HEADER)
            csv.writer(handle).writerows(rows)
        read = rows_of(drain(file_source(Path(folder)), sessions))
    fields = ["order_id", "line", "customer_id", "sku", "quantity", "status", "ordered_at"]
    assert [[r[f] for f in fields] for r in read] == rows


def test_blank_lines_are_no_rows_and_rows_name_the_line_they_start_on(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    two_lines = 'SO-2,1,C-7,BRK-200,1,"open\nsince Monday",2026-05-01T08:00:00Z\n'
    text = HEADER + order_lines(1) + "\n" + two_lines + order_lines(1, start=3) + "\n"
    (tmp_path / "orders-1.csv").write_text(text)
    batches = [b for b in drain(file_source(tmp_path), sessions) if b.rows]
    assert [line for b in batches for line in b.lines or []] == [2, 4, 6]
    assert rows_of(batches)[1]["status"] == "open\nsince Monday"


def test_csv_with_a_byte_order_mark_and_semicolons(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    text = (HEADER + order_lines(1)).replace(",", ";")
    (tmp_path / "orders-1.csv").write_bytes(b"\xef\xbb\xbf" + text.encode())
    (row,) = rows_of(drain(file_source(tmp_path, delimiter=";"), sessions))
    assert row["order_id"] == "SO-1"


def test_parquet_rows_arrive_typed(tmp_path: Path, sessions: sessionmaker[Session]) -> None:
    table = pa.table(
        {
            "warehouse": ["WH-1", "WH-2"],
            "sku": ["BRK-200", "BRK-200"],
            "on_hand": [140, 7],
            "counted_at": pa.array([1_777_000_000_000_000, 1_777_000_060_000_000],
                                   pa.timestamp("us", tz="UTC")),
        }
    )  # fmt: skip
    pq.write_table(table, tmp_path / "stock.parquet")
    config = FileSourceConfig(
        name="wms", kind="file", dataset="inventory", path=str(tmp_path / "*.parquet")
    )
    batches = drain(FileSource(config, CATALOG.get("inventory")), sessions)
    rows = rows_of(batches)
    assert [r["on_hand"] for r in rows] == [140, 7]
    assert not batches[0].text
    outcome = validate_row(
        CATALOG.get("inventory"), rows[0], text=False, now_ns=1_800_000_000 * 10**9
    )
    assert isinstance(outcome, ValidRow)
    assert outcome.samples == (("erp/inventory/WH-1/BRK-200/on_hand", 140.0),)


def erp_database(path: Path, rows: list[tuple[Any, ...]]) -> str:
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE IF NOT EXISTS stock (warehouse TEXT, sku TEXT, on_hand REAL, "
            "counted_at TEXT, version INTEGER)"
        )
        db.executemany("INSERT INTO stock VALUES (?, ?, ?, ?, ?)", rows)
    return f"sqlite:///{path}"


def stock(version: int | None, sku: str = "BRK-200") -> tuple[Any, ...]:
    return (
        "WH-1",
        sku,
        float(version or 0),
        f"2026-05-01T08:{(version or 0) % 60:02d}:00Z",
        version,
    )


def sql_source(url: str, **extra: Any) -> SqlSource:
    values: dict[str, Any] = {"table": "stock", "cursor": "version"} | extra
    config = SqlSourceConfig(name="erp-stock", kind="sql", dataset="inventory", url=url, **values)
    return SqlSource(config, CATALOG.get("inventory"))


def test_sql_reads_above_the_watermark_and_ties_never_get_lost(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    url = erp_database(tmp_path / "erp.db", [stock(1), stock(2), stock(2, "X"), stock(3)])
    source = sql_source(url, chunk_rows=2)
    first = drain(source, sessions)
    assert [r["on_hand"] for r in rows_of(first)] == [1.0, 2.0, 2.0, 3.0]
    assert drain(source, sessions)[0].rows == []  # nothing above version 3

    erp_database(tmp_path / "erp.db", [stock(4), stock(5)])
    assert [r["on_hand"] for r in rows_of(drain(source, sessions))] == [4.0, 5.0]


def test_sql_watermark_after_a_partial_run_keeps_the_straddling_tie(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    url = erp_database(tmp_path / "erp.db", [stock(1), stock(2), stock(2, "X"), stock(3)])
    source = sql_source(url, chunk_rows=2)
    batches = source.batches(sessions)
    chunk = next(batches)  # versions 1 and 2; another 2 may follow
    assert chunk.remember is not None
    with session_scope(sessions) as session:
        chunk.remember(session)
    batches.close()  # the run stops here
    assert [r["on_hand"] for r in rows_of(drain(source, sessions))] == [2.0, 2.0, 3.0]


def test_sql_query_mode_and_rows_without_cursor_are_reported(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    url = erp_database(tmp_path / "erp.db", [stock(1), stock(None), stock(2)])
    source = sql_source(url, table=None, query="SELECT * FROM stock WHERE on_hand >= 0;")
    batches = drain(source, sessions)
    assert [r["on_hand"] for r in rows_of(batches)] == [1.0, 2.0]
    assert (
        batches[-1].error == "1 rows have no value in the cursor column 'version' and are not read"
    )


def test_sql_mistakes_and_outages_are_werk_errors(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    url = erp_database(tmp_path / "erp.db", [stock(1)])
    with pytest.raises(ValidationFailed, match="no such table: stok") as caught:
        drain(sql_source(url, table="stok"), sessions)
    assert caught.value.code == "bad_source_query"
    with pytest.raises(Unavailable, match="source 'erp-stock': unable to open database file"):
        drain(sql_source(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}"), sessions)
    assert "erp.db table stock" in sql_source(url).describe()


def test_watermark_values_keep_their_type() -> None:
    from datetime import UTC, date, datetime
    from decimal import Decimal

    for value in (7, 2.5, "2026-05-01 08:00", datetime(2026, 5, 1, 8, tzinfo=UTC),
                  datetime(2026, 5, 1, 8), date(2026, 5, 1), Decimal("10.25")):  # fmt: skip
        back = decode(encode(value))
        assert (back, type(back)) == (value, type(value))
