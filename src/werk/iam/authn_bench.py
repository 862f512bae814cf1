"""What verifying a credential costs per request, measured on a live Authenticator."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Final

from werk.core.errors import ValidationFailed
from werk.iam.authn import Authenticator
from werk.iam.scopes import Principal

__all__ = ["measure_verification"]

BENCH_METHOD: Final = "bench"


def _per_call_us(call: Callable[[str], object], arguments: Sequence[str]) -> float:
    started = time.perf_counter()
    for argument in arguments:
        call(argument)
    return (time.perf_counter() - started) / len(arguments) * 1e6


def measure_verification(
    authn: Authenticator, principal: Principal, n: int, *, api_key: str | None = None
) -> dict[str, float]:
    """Microseconds per call: signing, verifying new and repeated tokens, and an API key.

    `jwt_uncached_us` verifies `n` distinct tokens (each signature checked once);
    `jwt_cached_us` verifies one token `n` times (the signature check is skipped);
    `api_key_us` (only with `api_key`, a key of any principal) verifies it `n` times.
    """
    if n < 1:
        raise ValidationFailed("measure at least one call", code="bad_count")
    started = time.perf_counter()
    tokens = [authn.access_token(principal, method=BENCH_METHOD).access_token for _ in range(n)]
    issue_us = (time.perf_counter() - started) / n * 1e6
    authn.verify(authn.access_token(principal, method=BENCH_METHOD).access_token)
    figures = {
        "jwt_issue_us": issue_us,
        "jwt_uncached_us": _per_call_us(authn.verify, tokens),
        "jwt_cached_us": _per_call_us(authn.verify, [tokens[0]] * n),
    }
    if api_key is not None:
        authn.verify(api_key)
        figures["api_key_us"] = _per_call_us(authn.verify, [api_key] * n)
    return figures
