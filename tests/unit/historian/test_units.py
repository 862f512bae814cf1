"""Units: canonical spellings, conversions with offsets, precise errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from werk.core.errors import ValidationFailed
from werk.historian.units import check_unit, converter


def test_spellings_of_one_unit_share_one_canonical_name() -> None:
    assert check_unit("degC") == check_unit("°C") == check_unit("degree_Celsius")
    assert check_unit("kW") == "kilowatt"
    assert check_unit("m/s") == check_unit("meter / second")


def test_offset_units_convert_with_their_offset() -> None:
    to_celsius = converter("degF", "degC")
    np.testing.assert_allclose(to_celsius(np.array([32.0, 212.0, -40.0])), [0.0, 100.0, -40.0])
    np.testing.assert_allclose(converter("degC", "K")(np.array([0.0])), [273.15])


def test_scaled_units_convert_by_their_factor() -> None:
    np.testing.assert_allclose(converter("bar", "kPa")(np.array([1.5])), [150.0])
    np.testing.assert_allclose(converter("l/min", "m**3/h")(np.array([1000.0])), [60.0])


def test_the_same_unit_in_other_words_leaves_values_alone() -> None:
    values = np.array([1.0, 2.0])
    assert converter("degC", "degree_Celsius")(values) is values


def test_logarithmic_units_convert_through_pint() -> None:
    np.testing.assert_allclose(converter("dBm", "mW")(np.array([0.0, 10.0, 20.0])), [1, 10, 100])


@pytest.mark.parametrize("text", ["furlongs_per_fortnite", "", "3 m", "m/", "(", "kg*"])
def test_unknown_units_are_named_in_the_error(text: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        check_unit(text)
    assert caught.value.code == "unknown_unit"
    assert caught.value.params["unit"] == text


def test_units_of_different_dimensions_do_not_convert() -> None:
    with pytest.raises(ValidationFailed) as caught:
        converter("m", "s")
    assert caught.value.code == "incompatible_units"
    assert caught.value.params == {"unit": "m", "target": "s"}


def test_an_unknown_target_is_reported_as_unknown() -> None:
    with pytest.raises(ValidationFailed) as caught:
        converter("degC", "degQ")
    assert caught.value.code == "unknown_unit"


@given(st.text(max_size=30))
def test_any_text_is_a_unit_or_a_precise_error(text: str) -> None:
    try:
        canonical = check_unit(text)
    except ValidationFailed as exc:
        assert exc.code == "unknown_unit"
    else:
        assert check_unit(canonical) == canonical


@given(st.lists(st.floats(-1e6, 1e6), max_size=20))
def test_converting_there_and_back_gives_the_values_again(values: list[float]) -> None:
    data = np.array(values, dtype=np.float64)
    back = converter("degC", "degF")(converter("degF", "degC")(data))
    np.testing.assert_allclose(back, data, rtol=1e-9, atol=1e-6)
