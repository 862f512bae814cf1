"""Scope helpers of the historian's access: filter overlap and the filters of a caller."""

from __future__ import annotations

from itertools import product

from hypothesis import given
from hypothesis import strategies as st

from werk.core.filters import matches
from werk.historian.access import ScopedCaller, overlaps, permission
from werk.historian.layers import Layer
from werk.iam.scopes import Grant, OrgKind, Principal, PrincipalKind, Scope
from werk.sources.access import template_filter
from werk.sources.contracts import Measure

_NAMES = ("x", "y", "z")
_TOPICS = ["/".join(p) for n in range(1, 6) for p in product(_NAMES, repeat=n)]
_LEVEL = st.sampled_from(("x", "y", "+"))


@st.composite
def _filters(draw: st.DrawFn) -> str:
    levels = draw(st.lists(_LEVEL, min_size=0, max_size=3))
    last = draw(st.sampled_from(("x", "+", "#")))
    return "/".join([*levels, last])


@given(_filters(), _filters())
def test_filters_overlap_exactly_when_some_path_matches_both(first: str, second: str) -> None:
    witness = any(matches(first, t) and matches(second, t) for t in _TOPICS)
    assert overlaps(first, second) is witness
    assert overlaps(second, first) is witness


def test_overlap_examples() -> None:
    assert overlaps("acme/berlin/#", "acme/+/press/#")
    assert overlaps("acme/#", "acme")
    assert not overlaps("acme/berlin/#", "acme/munich/#")
    assert not overlaps("acme/+", "acme")


def test_a_measure_template_becomes_a_filter_of_every_path_it_can_name() -> None:
    measure = Measure(field="on_hand", tag="erp/inventory/{warehouse}/{sku}-x/on_hand")
    assert template_filter(measure) == "erp/inventory/+/+/on_hand"


def test_principals_name_their_namespace_filters_per_layer() -> None:
    grant = Grant("r", frozenset({"history:read:*"}), Scope(("acme/a/#",), layers=("raw",)))
    user = Principal("u", PrincipalKind.USER, "u", "o", OrgKind.OPERATOR, (grant,))
    assert isinstance(user, ScopedCaller)
    assert user.namespace_filters(permission(Layer.RAW)) == ("acme/a/#",)
    assert user.namespace_filters(permission(Layer.BUSINESS)) == ()
