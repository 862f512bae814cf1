"""The namespace registry: last-known values, counts, rates, tree, persistence."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import sessionmaker

from werk.core.clock import NS_PER_S
from werk.core.db import create_db_engine, upgrade_schema
from werk.core.errors import NotFound, PayloadError
from werk.uns.contracts import Decoded, Quality, Sample
from werk.uns.namespace import Namespace

T0 = 1_795_000_000 * NS_PER_S
NODE = "acme/berlin/machining/line-1/cell-1/cnc-1"


def _msg(tag: str, value: object, ts_s: float, msg_id: int) -> Decoded:
    sample = Sample(f"{NODE}/{tag}", T0 + int(ts_s * NS_PER_S), value, Quality.GOOD, "u")  # type: ignore[arg-type]
    return Decoded(msg_id, [sample])


def test_newest_source_time_wins_even_when_it_arrives_first() -> None:
    ns = Namespace()
    ns.observe_messages([(_msg("t", 2.0, 10, 1), T0), (_msg("t", 1.0, 5, 2), T0 + NS_PER_S)])
    state = ns.get(f"{NODE}/t")
    assert (state.value, state.msg_id, state.samples) == (2.0, 1, 2)
    assert state.last_seen_ns == T0 + NS_PER_S
    ns.observe_messages([(_msg("t", 3.0, 20, 3), T0 + 2 * NS_PER_S)])
    assert ns.get(f"{NODE}/t").value == 3.0


def test_rate_follows_arrivals_and_decays_when_quiet() -> None:
    ns = Namespace()
    for i in range(10):
        ns.observe_messages([(_msg("t", float(i), i, i), T0 + i * NS_PER_S // 2)])
    state = ns.get(f"{NODE}/t")
    assert state.rate(state.last_seen_ns) == pytest.approx(2.0)
    assert state.rate(state.last_seen_ns + 10 * NS_PER_S) == pytest.approx(0.1)


def test_type_changes_are_refused_and_unknown_tags_are_not_found() -> None:
    ns = Namespace()
    ns.observe_messages([(_msg("s", "RUN", 1, 1), T0)])
    with pytest.raises(PayloadError, match="is string, got number"):
        ns.check_types(_msg("s", 5, 2, 2).samples, {})
    with pytest.raises(NotFound):
        ns.get(f"{NODE}/missing")


def test_tree_search_and_filters() -> None:
    ns = Namespace()
    ns.observe_messages([(_msg("a.temp", 1.0, 1, 1), T0), (_msg("b.speed", 2.0, 1, 2), T0)])
    tree = ns.tree("acme/berlin").as_dict()
    assert tree["children"][0]["name"] == "machining"
    assert [s.path for s in ns.search("CNC speed", 10)] == [f"{NODE}/b.speed"]
    assert len(ns.select("acme/+/machining/#")) == 2
    assert ns.select("acme/+/assembly/#") == []


def test_persist_and_load_round_trip_and_a_failed_persist_keeps_the_changes(tmp_path: Path) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'werk.db'}")
    sessions = sessionmaker(engine)
    ns = Namespace()
    ns.observe_messages([(_msg("t", True, 1, 7), T0)])
    with pytest.raises(OperationalError):
        ns.persist(sessions)  # no schema yet
    upgrade_schema(engine)
    assert ns.persist(sessions) == 1
    assert ns.persist(sessions) == 0
    loaded = Namespace()
    with sessions() as session:
        loaded.load(session=session)
    state = loaded.get(f"{NODE}/t")
    assert (state.value, state.data_type, state.unit, state.msg_id) == (True, "boolean", "u", 7)
    engine.dispose()


def test_a_type_change_inside_one_batch_is_refused() -> None:
    ns = Namespace()
    pending: dict[str, str] = {}
    first = _msg("new", True, 1, 1).samples
    ns.check_types(first, pending)
    ns.note_types(first, pending)
    with pytest.raises(PayloadError, match="is boolean, got number"):
        ns.check_types(_msg("new", 21.5, 2, 2).samples, pending)
