"""Units of measure: validating unit names and converting arrays between units (pint)."""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from functools import lru_cache
from typing import Final

import numpy as np
import numpy.typing as npt
import pint

from werk.core.errors import ValidationFailed

FloatArray = npt.NDArray[np.float64]
Converter = Callable[[FloatArray], FloatArray]

_MAX_UNIT_CHARS: Final = 100
_EXACT_LIMIT: Final = 1 << 40


@lru_cache(maxsize=1)
def registry() -> pint.UnitRegistry[float]:
    """The one unit registry (built on first use: it takes a moment)."""
    return pint.UnitRegistry()


@lru_cache(maxsize=4096)
def _canonical(text: str) -> str | None:
    """The canonical spelling, None for text that is not a unit (remembered either way)."""
    if not text.strip() or len(text) > _MAX_UNIT_CHARS:
        return None
    try:
        return str(registry().parse_units(text))
    # pint's parser raises assorted built-in errors on malformed text (AssertionError,
    # tokenize.TokenError, TypeError, ...), not only its own
    except Exception:
        return None


def _unknown(text: str) -> ValidationFailed:
    return ValidationFailed(f"unit {text!r} is not a known unit", code="unknown_unit", unit=text)


def check_unit(text: str) -> str:
    """The canonical spelling of a unit, e.g. ``degC`` -> ``degree_Celsius``."""
    canonical = _canonical(text)
    if canonical is None:
        raise _unknown(text)
    return canonical


def converter(source: str, target: str) -> Converter:
    """A function turning arrays in `source` units into `target` units."""
    canonical = check_unit(source), check_unit(target)
    try:
        return _converter(*canonical)
    except pint.PintError as exc:
        raise ValidationFailed(
            f"unit {source!r} cannot be converted to {target!r}",
            code="incompatible_units",
            unit=source,
            target=target,
        ) from exc


@lru_cache(maxsize=1024)
def _converter(source: str, target: str) -> Converter:
    if source == target:
        return _identity
    _check_convertible(source, target)
    exact = _exact_affine(source, target)
    if exact is None:
        return _general(source, target)
    return _affine(*exact)


def _check_convertible(source: str, target: str) -> None:
    """Raise pint's error when the units do not convert."""
    registry().Quantity(1.0, source).to(target)


@lru_cache(maxsize=1)
def _exact_registry() -> pint.UnitRegistry[Fraction]:
    """A registry computing with fractions, to find conversion factors without rounding."""
    return pint.UnitRegistry(non_int_type=Fraction)


def _exact_affine(source: str, target: str) -> tuple[Fraction, Fraction] | None:
    """Scale and offset of the conversion, or None when it is not affine."""
    ureg = _exact_registry()
    try:
        at = [Fraction(ureg.Quantity(Fraction(x), source).to(target).magnitude) for x in (0, 1, 2)]
    # logarithmic units and the like do not compute with fractions: not affine
    except Exception:
        return None
    offset, scale = at[0], at[1] - at[0]
    if scale == 0 or at[2] != 2 * scale + offset:
        return None
    return scale, offset


def _identity(values: FloatArray) -> FloatArray:
    return values


def _affine(scale: Fraction, offset: Fraction) -> Converter:
    """``(x - zero) * scale``, with small integer ratios applied exactly (5/9, 1/1000)."""
    zero = float(-offset / scale)
    if scale.numerator < _EXACT_LIMIT and scale.denominator < _EXACT_LIMIT:
        numerator, denominator = float(scale.numerator), float(scale.denominator)

        def ratio(values: FloatArray) -> FloatArray:
            return (values - zero) * numerator / denominator

        return ratio
    factor = float(scale)

    def scaled(values: FloatArray) -> FloatArray:
        return (values - zero) * factor

    return scaled


def _general(source: str, target: str) -> Converter:
    """Convert through pint itself, for units that are not affine (decibels and the like)."""
    ureg = registry()

    def convert(values: FloatArray) -> FloatArray:
        with np.errstate(all="ignore"):
            result = ureg.Quantity(values, source).to(target).magnitude
        return np.asarray(result, dtype=np.float64)

    return convert
