"""The host inside the historian writer, on real DuckDB and SQLite: failures lose nothing.

Each test drives `HistorianWriter` with spooled messages as ingest hands them over, with
werk's own `SparkplugService` as the translator and no MQTT.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session, sessionmaker
from tests.conftest import make_settings

from werk.core.clock import now_ns
from werk.core.db import create_db_engine, upgrade_schema
from werk.core.journal import Position
from werk.historian import DuckDBStore
from werk.sparkplug.codec import Metric, Payload, encode
from werk.sparkplug.datatypes import DataType
from werk.sparkplug.service import SparkplugService
from werk.uns.messages import Chunk, IngestStats, Received
from werk.uns.models import QuarantineRecord
from werk.uns.namespace import Namespace
from werk.uns.writer import HistorianWriter

G, E = "plant", "gw"
TEMP = "plant/gw/sparkplug/devices/node/Temp"
JSON_TOPIC = "uns/v1/acme/berlin/machining/line-1/cell-1/cnc-1/_value/temp"
FOREVER = 2**62


@dataclass
class Rig:
    sessions: sessionmaker[Session]
    store: DuckDBStore
    service: SparkplugService
    writer: HistorianWriter
    commits: list[Position]

    def run(self, *messages: Received, end: int = 0) -> None:
        size = sum(len(m.payload) for m in messages)
        self.writer._process_safely([Chunk(list(messages), Position(0, end), size)])

    def values(self, tag: str) -> list[Any]:
        return [p.value for p in self.store.points(tag, 0, FOREVER, 1000)]

    def quarantined(self) -> list[str]:
        with self.sessions() as session:
            return [r.reason for r in session.scalars(select(QuarantineRecord))]


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    settings = make_settings(tmp_path, sparkplug_reorder_timeout_ms=0)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_db_engine(settings.relational_url)
    upgrade_schema(engine)
    sessions = sessionmaker(engine, expire_on_commit=False)
    namespace = Namespace()
    store = DuckDBStore(settings.historian_file)
    store.open()
    service = SparkplugService(settings=settings, sessions=sessions, namespace=namespace)
    commits: list[Position] = []
    writer = HistorianWriter(
        settings=settings, store=store, namespace=namespace, sessions=sessions,
        commit=commits.append, stats=IngestStats(), translators=[service.host],
    )  # fmt: skip
    writer._running = True
    yield Rig(sessions, store, service, writer, commits)
    store.close()


def _message(kind: str, payload: Payload, **flags: Any) -> Received:
    return Received(f"spBv1.0/{G}/{kind}/{E}", encode(payload), now_ns(), **flags)


def _temp(value: float, ts: int, **extra: Any) -> Metric:
    return Metric(
        name="Temp", alias=1, datatype=DataType.DOUBLE, value=value, timestamp=ts, **extra
    )


def _nbirth(bd_seq: int, ts: int, value: float) -> Payload:
    bd = Metric(name="bdSeq", datatype=DataType.INT64, value=bd_seq, timestamp=ts)
    return Payload(timestamp=ts, seq=0, metrics=(bd, _temp(value, ts)))


def _ndata(seq: int, ts: int, value: float, **flags: Any) -> Payload:
    metric = Metric(alias=1, value=value, timestamp=ts, **flags)
    return Payload(timestamp=ts, seq=seq, metrics=(metric,))


def _ndeath(bd_seq: int) -> Payload:
    return Payload(metrics=(Metric(name="bdSeq", datatype=DataType.INT64, value=bd_seq),))


def test_a_failing_bookkeeping_database_loses_no_data(rig: Rig) -> None:
    t = now_ns() // 1_000_000
    rig.service._sessions = sessionmaker(create_engine("sqlite:////nonexistent-dir/x.db"))
    json_value = Received(JSON_TOPIC, b'{"value": 21.5}', now_ns())
    rig.run(json_value, _message("NBIRTH", _nbirth(0, t, 1.0)), end=100)
    assert rig.values("acme/berlin/machining/line-1/cell-1/cnc-1/temp") == [21.5]
    assert rig.values(TEMP) == [1.0]
    assert rig.commits == [Position(0, 100)]


def test_data_with_a_gap_is_stored_while_the_host_cannot_ask_for_a_rebirth(rig: Rig) -> None:
    t = now_ns() // 1_000_000
    assert rig.service.client is None  # as during the spool replay at start
    rig.run(_message("NBIRTH", _nbirth(0, t, 1.0)), _message("NDATA", _ndata(1, t + 1, 2.0)))
    rig.run(_message("NDATA", _ndata(3, t + 3, 3.0)))
    assert rig.values(TEMP) == [1.0, 2.0, 3.0]
    node = rig.service.host.node(G, E)
    assert node is not None and node.stats.rebirths_requested == 0 and node.stats.seq_errors == 1


def test_overflowed_births_and_deaths_still_move_the_node_state(rig: Rig) -> None:
    t = now_ns() // 1_000_000
    rig.run(_message("NBIRTH", _nbirth(0, t, 1.0)))
    rig.run(
        _message("NDEATH", _ndeath(0), overflowed=True),
        _message("NBIRTH", _nbirth(1, t + 5, 9.0), overflowed=True),
    )
    node = rig.service.host.node(G, E)
    assert node is not None and node.bd_seq == 1 and node.online
    rig.run(_message("NDEATH", _ndeath(1)))
    assert not node.online and node.stats.late_deaths == 0
    assert rig.quarantined() == ["queue_overflow", "queue_overflow"]


def test_a_sample_replayed_twice_in_one_batch_is_stored_once(rig: Rig) -> None:
    t = now_ns() // 1_000_000
    rig.run(_message("NBIRTH", _nbirth(0, t, 1.0)))
    old = t - 1000
    rig.run(
        _message("NDATA", _replay(1, old)),
        _message("NDATA", _replay(2, old)),
    )
    stamps = [p.ts_ns for p in rig.store.points(TEMP, 0, FOREVER, 100)]
    assert stamps.count(old * 1_000_000) == 1


def _replay(seq: int, ts: int) -> Payload:
    return Payload(timestamp=ts + 5000, seq=seq, metrics=(
        Metric(alias=1, value=0.5, timestamp=ts, is_historical=True),
    ))  # fmt: skip


def test_a_transient_metric_is_a_live_value_but_not_history(rig: Rig) -> None:
    t = now_ns() // 1_000_000
    debug = Metric(name="Debug", alias=2, datatype=DataType.DOUBLE, value=7.0, timestamp=t,
                   is_transient=True)  # fmt: skip
    bd = Metric(name="bdSeq", datatype=DataType.INT64, value=0, timestamp=t)
    rig.run(_message("NBIRTH", Payload(timestamp=t, seq=0, metrics=(bd, _temp(1.0, t), debug))))
    tag = "plant/gw/sparkplug/devices/node/Debug"
    assert rig.values(tag) == []
    assert rig.values(TEMP) == [1.0]
    assert rig.writer._namespace.get(tag).value == 7.0
