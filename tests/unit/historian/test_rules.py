"""Quality rules: validation, tag filters, rule sets in TOML files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from werk.core.errors import ValidationFailed
from werk.historian.rules import QualityRule, RuleSet, check_filter, filter_matches

LINE_1 = "acme/berlin/machining/line-1/cell-1/cnc-1/temp"

levels = st.text(alphabet="ab-1", min_size=1, max_size=3)
paths = st.lists(levels, min_size=1, max_size=6).map("/".join)


def _reference(tags: str, path: str) -> bool:
    """MQTT filter semantics as a regular expression."""
    if tags == "#":
        return True
    pattern = re.escape(tags).replace(r"\+", "[^/]*")
    if pattern.endswith("/\\#"):
        pattern = pattern[: -len("/\\#")] + "(/.*)?"
    return re.fullmatch(pattern, path) is not None


filters = st.lists(st.one_of(levels, st.just("+")), min_size=1, max_size=6).flatmap(
    lambda parts: st.sampled_from(["/".join(parts), "/".join([*parts, "#"])])
)


@given(filters, paths)
def test_the_matcher_agrees_with_mqtt_semantics(tags: str, path: str) -> None:
    assert filter_matches(tags, path) == _reference(tags, path)


@given(paths, st.data())
def test_a_path_matches_itself_with_any_level_wildcarded(path: str, data: st.DataObject) -> None:
    parts = path.split("/")
    i = data.draw(st.integers(0, len(parts) - 1))
    assert filter_matches(path, path)
    assert filter_matches("/".join([*parts[:i], "+", *parts[i + 1 :]]), path)
    assert filter_matches("/".join([*parts[:i], "#"]), path)
    assert not filter_matches(path + "/+", path)


@pytest.mark.parametrize("tags", ["", "a/#/b", "a/b+/c", "a/#x"])
def test_malformed_filters_are_refused(tags: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        check_filter(tags)
    assert caught.value.code == "bad_filter"


def test_the_first_matching_rule_applies() -> None:
    first = QualityRule(tags="acme/+/+/line-1/#", max=100)
    second = QualityRule(tags="acme/#", max=50)
    rules = RuleSet([first, second])
    assert rules.for_tag(LINE_1) is first
    assert rules.for_tag("acme/berlin/machining/line-2/cell-1/temp") is second
    assert rules.for_tag("other/site") is None
    assert rules.for_tag(LINE_1) is first  # from the cache


def test_a_rule_checks_its_units_and_limits() -> None:
    rule = QualityRule(tags="#", unit="degF", canonical_unit="degC", min=-20, max=150)
    assert rule.target_unit == "degC"
    assert QualityRule(tags="#", unit="bar").target_unit == "bar"


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"unit": "degQ"}, "unknown_unit"),
        ({"unit": "degC", "canonical_unit": "bar"}, "incompatible_units"),
        ({"min": 10, "max": 5}, "bad_range"),
        ({"max_rate": 0}, "greater_than"),
        ({"flatline_s": -1}, "greater_than"),
        ({"stale_s": float("inf")}, "finite_number"),
        ({"spike": -0.5}, "greater_than"),
        ({"flatline_tolerance": -1}, "greater_than_equal"),
        ({"tags": "a/#/b"}, "bad_filter"),
        ({"colour": "red"}, "extra_forbidden"),
    ],
)
def test_invalid_rules_are_refused_with_a_reason(fields: dict[str, object], error: str) -> None:
    with pytest.raises(ValidationError) as caught:
        QualityRule.model_validate({"tags": "#", **fields})
    assert caught.value.errors()[0]["type"] == error


RULES_TOML = """
# plant-wide checks
[[rules]]
name = "line 1 temperatures"
tags = "acme/+/+/line-1/+/+/temp"
unit = "degF"
canonical_unit = "degC"
min = -20
max = 150.5
max_rate = 2.0

[[rules]]
tags = "acme/#"
stale_s = 60
"""


def test_rules_load_from_toml_in_order(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(RULES_TOML)
    rules = RuleSet.load(path)
    assert len(rules) == 2
    assert rules.for_tag(LINE_1) == QualityRule(
        name="line 1 temperatures", tags="acme/+/+/line-1/+/+/temp", unit="degF",
        canonical_unit="degC", min=-20.0, max=150.5, max_rate=2.0,
    )  # fmt: skip
    assert rules.for_tag("acme/x").stale_s == 60.0  # type: ignore[union-attr]


def test_a_bad_rule_is_named_by_file_index_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(RULES_TOML + '\n[[rules]]\ntags = "#"\nunit = "wibble"\n')
    with pytest.raises(ValidationFailed) as caught:
        RuleSet.load(path)
    error = caught.value
    assert error.code == "bad_rules_file"
    assert error.params["file"] == str(path)
    assert (error.params["rule"], error.params["line"], error.params["field"]) == (3, 18, "unit")
    assert error.params["reason"] == "unknown_unit"
    assert "line 18" in error.message and "wibble" in error.message


def test_broken_toml_is_reported_with_its_line() -> None:
    with pytest.raises(ValidationFailed) as caught:
        RuleSet.loads('[[rules]]\ntags = "#"\nmax = \n', source="site.toml")
    assert caught.value.code == "bad_rules_file"
    assert caught.value.params["line"] == 3
    assert caught.value.message.startswith("site.toml line 3:")


@pytest.mark.parametrize("text", ['rule = "x"', "rules = 5", 'rules = ["x"]'])
def test_a_file_of_other_shape_is_refused(text: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        RuleSet.loads(text)
    assert caught.value.code == "bad_rules_file"


def test_a_missing_file_is_a_precise_error(tmp_path: Path) -> None:
    with pytest.raises(ValidationFailed) as caught:
        RuleSet.load(tmp_path / "absent.toml")
    assert caught.value.code == "bad_rules_file"


def test_an_empty_file_has_no_rules() -> None:
    assert len(RuleSet.loads("")) == 0


def test_rules_are_saved_and_read_back(tmp_path: Path) -> None:
    rules = RuleSet.loads(RULES_TOML)
    path = tmp_path / "saved.toml"
    rules.save(path)
    assert RuleSet.load(path) == rules
    assert 'canonical_unit = "degC"' in path.read_text()


numbers = st.floats(-1e12, 1e12, allow_nan=False, allow_infinity=False)
positive = st.floats(1e-6, 1e9, allow_nan=False, allow_infinity=False)


@st.composite
def rules(draw: st.DrawFn) -> QualityRule:
    low, high = sorted([draw(numbers), draw(numbers)])
    return QualityRule(
        tags=draw(filters),
        name=draw(st.none() | st.text(max_size=20)),
        description=draw(st.text(max_size=40)),
        unit=draw(st.sampled_from([None, "degC", "degF"])),
        canonical_unit=draw(st.sampled_from([None, "K"])),
        min=draw(st.none() | st.just(low)),
        max=draw(st.none() | st.just(high)),
        max_rate=draw(st.none() | positive),
        flatline_s=draw(st.none() | positive),
        flatline_tolerance=draw(st.floats(0, 10)),
        stale_s=draw(st.none() | positive),
        spike=draw(st.none() | positive),
    )


@given(st.lists(rules(), max_size=4))
def test_any_rule_set_survives_toml(rule_list: list[QualityRule]) -> None:
    rules_ = RuleSet(rule_list)
    assert RuleSet.loads(rules_.dumps()) == rules_
