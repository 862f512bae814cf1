"""A table or query of any SQLAlchemy database, read incrementally above a cursor watermark."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from functools import partial
from typing import Any, Final

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, ProgrammingError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from werk.core.clock import now_ns
from werk.core.db import session_scope
from werk.core.errors import Unavailable, ValidationFailed, WerkError
from werk.sources import service
from werk.sources.config import SqlSourceConfig
from werk.sources.connector import Batch, ColumnMap
from werk.sources.contracts import DatasetContract

_ALIAS: Final = "werk_source"
# SQLite reports mistakes in the query as operational errors; tell them from outages.
_MISTAKE: Final = re.compile(r"no such (table|column)|syntax error")


class SqlSource:
    """Loads the rows of a table or query whose cursor column is above the last loaded value."""

    def __init__(self, config: SqlSourceConfig, contract: DatasetContract) -> None:
        self._config = config
        self._contract = contract

    @property
    def config(self) -> SqlSourceConfig:
        """The source's configuration."""
        return self._config

    def describe(self) -> str:
        """The database (password hidden) and the table or query."""
        c = self._config
        try:
            where = make_url(c.database_url()).render_as_string(hide_password=True)
        except (ArgumentError, WerkError):
            where = f"${c.url_env}" if c.url_env else "(invalid URL)"
        return f"{where} table {c.table}" if c.table else f"{where} query"

    def batches(self, sessions: sessionmaker[Session]) -> Iterator[Batch]:
        """Rows above the watermark in cursor order, a chunk per batch."""
        with session_scope(sessions) as session:
            stored = service.watermark(session=session, source=self._config.name)
        engine = self._engine()
        try:
            with _mapped(self._config.name), engine.connect() as connection:
                yield from self._read(connection, None if stored is None else decode(stored))
        finally:
            engine.dispose()

    def _engine(self) -> Engine:
        url = self._config.database_url()
        with _mapped(self._config.name):
            backend = make_url(url).get_backend_name()
            return sa.create_engine(url, connect_args=_timeouts(backend, self._config.timeout_s))

    def _read(self, connection: Connection, mark: object) -> Iterator[Batch]:
        c = self._config
        source = self._selectable()
        streamed = connection.execution_options(stream_results=True, yield_per=c.chunk_rows)
        result = streamed.execute(self._query(source, mark))
        headers = list(result.keys())
        columns = ColumnMap(self._contract, c.columns, c.extra_columns, ignored={c.cursor})
        columns.check(headers, f"source {c.name!r}")
        at = None if c.cursor is None else _position(headers, c.cursor)
        origin, number, last = f"table {c.table}" if c.table else "query", 1, mark
        for part in result.partitions():
            rows = [dict(zip(headers, values, strict=True)) for values in part]
            done = None if at is None else _complete_below(part, at)
            yield Batch(origin, number, rows, columns=columns, remember=self._keeper(done))
            number += len(rows)
            last = part[-1][at] if at is not None else last
        yield Batch(origin, number, remember=self._keeper(last if at is not None else None))
        if at is not None:
            yield from self._unreadable(connection, source)

    def _selectable(self) -> sa.TableClause | sa.Subquery:
        c = self._config
        cursor: list[sa.ColumnClause[Any]] = [sa.column(c.cursor)] if c.cursor else []
        if c.table is not None:
            schema, _, name = c.table.rpartition(".")
            return sa.table(name, *cursor, schema=schema or None)
        assert c.query is not None
        return sa.text(c.query.strip().rstrip(";")).columns(*cursor).subquery(_ALIAS)

    def _query(self, source: sa.TableClause | sa.Subquery, mark: object) -> sa.Select[Any]:
        query: sa.Select[Any] = sa.select(sa.literal_column("*")).select_from(source)
        if self._config.cursor is None:
            return query
        cursor = source.c[self._config.cursor]
        query = query.where(cursor.is_not(None)).order_by(cursor)
        return query if mark is None else query.where(cursor > sa.bindparam("mark", mark))

    def _unreadable(
        self, connection: Connection, source: sa.TableClause | sa.Subquery
    ) -> Iterator[Batch]:
        """A batch with an error when rows lack a cursor value: they are never read."""
        cursor = source.c[str(self._config.cursor)]
        query = sa.select(sa.func.count()).select_from(source).where(cursor.is_(None))
        missing = int(connection.execute(query).scalar_one())
        if missing:
            yield Batch(
                self._config.name,
                error=f"{missing} rows have no value in the cursor column "
                f"{self._config.cursor!r} and are not read",
            )

    def _keeper(self, value: object) -> Callable[[Session], None] | None:
        return None if value is None else partial(self._remember, encode(value))

    def _remember(self, value_json: str, session: Session) -> None:
        service.set_watermark(session=session, source=self._config.name, value_json=value_json,
                              at_ns=now_ns())  # fmt: skip


def _position(headers: list[str], cursor: str) -> int:
    if cursor not in headers:
        raise ValidationFailed(
            f"the cursor column {cursor!r} is not among the columns {', '.join(headers)}",
            code="bad_cursor",
        )
    return headers.index(cursor)


def _complete_below(part: Sequence[Sequence[Any]], at: int) -> object:
    """The highest cursor value of the chunk no later chunk can repeat (ties may straddle)."""
    last = part[-1][at]
    below = [row[at] for row in part if row[at] < last]
    return max(below) if below else None


def _timeouts(backend: str, timeout_s: float) -> dict[str, Any]:
    seconds = max(1, int(timeout_s))
    if backend == "sqlite":
        return {"timeout": timeout_s}
    if backend == "postgresql":
        return {"connect_timeout": seconds, "options": f"-c statement_timeout={seconds * 1000}"}
    if backend in ("mysql", "mariadb"):
        return {"connect_timeout": seconds, "read_timeout": seconds}
    return {}


@contextmanager
def _mapped(name: str) -> Iterator[None]:
    """Turn SQLAlchemy errors into werk errors naming the source."""
    try:
        yield
    except SQLAlchemyError as exc:
        detail = str(exc.orig) if isinstance(exc, DBAPIError) else str(exc)
        message = f"source {name!r}: {detail.splitlines()[0] if detail else type(exc).__name__}"
        if isinstance(exc, ProgrammingError | ArgumentError) or _MISTAKE.search(detail):
            raise ValidationFailed(message, code="bad_source_query") from exc
        raise Unavailable(message, code="source_unavailable") from exc


def encode(value: object) -> str:
    """A cursor value as JSON that keeps its type."""
    if isinstance(value, datetime):
        kind, text = "datetime", value.isoformat()
    elif isinstance(value, date):
        kind, text = "date", value.isoformat()
    elif isinstance(value, Decimal):
        kind, text = "decimal", str(value)
    elif isinstance(value, bool | int | float | str):
        return orjson.dumps({"type": type(value).__name__, "value": value}).decode()
    else:
        raise ValidationFailed(
            f"a cursor column of type {type(value).__name__} cannot be a watermark",
            code="bad_cursor",
        )
    return orjson.dumps({"type": kind, "value": text}).decode()


_DECODE: Final[dict[str, Callable[[Any], object]]] = {
    "datetime": datetime.fromisoformat,
    "date": date.fromisoformat,
    "decimal": Decimal,
    "int": int,
    "float": float,
    "str": str,
    "bool": bool,
}


def decode(value_json: str) -> object:
    """A cursor value from its JSON form."""
    data = orjson.loads(value_json)
    return _DECODE[data["type"]](data["value"])
