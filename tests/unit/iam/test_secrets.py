"""API keys and opaque tokens: format, parsing (property-based), hashing."""

from __future__ import annotations

import hashlib
import re

from hypothesis import given
from hypothesis import strategies as st

from werk.iam.secrets import (
    is_api_key,
    new_api_key,
    new_token,
    parse_api_key,
    secret_hash,
    token_hash,
)

_KEY = re.compile(r"wk_[0-9a-f]{12}_[A-Za-z0-9_-]{43}")
_URLSAFE = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"


def test_a_new_key_has_the_documented_shape_and_parses_back() -> None:
    key_id, text, digest = new_api_key()
    assert _KEY.fullmatch(text)
    assert is_api_key(text)
    parsed = parse_api_key(text)
    assert parsed is not None
    assert parsed[0] == key_id
    assert secret_hash(parsed[1]) == digest
    assert digest == hashlib.sha256(parsed[1].encode()).hexdigest()


def test_keys_are_unique() -> None:
    keys = [new_api_key() for _ in range(200)]
    assert len({k[0] for k in keys}) == 200
    assert len({k[1] for k in keys}) == 200


@given(
    key_id=st.text("0123456789abcdef", min_size=12, max_size=12),
    secret=st.text(_URLSAFE, min_size=43, max_size=43),
)
def test_every_well_formed_key_parses(key_id: str, secret: str) -> None:
    assert parse_api_key(f"wk_{key_id}_{secret}") == (key_id, secret)


@given(text=st.text(max_size=80))
def test_parse_never_raises_and_accepts_only_the_exact_shape(text: str) -> None:
    parsed = parse_api_key(text)
    assert (parsed is not None) == bool(_KEY.fullmatch(text))


@given(data=st.data())
def test_any_changed_character_of_a_key_changes_what_it_proves(data: st.DataObject) -> None:
    key_id, text, digest = new_api_key()
    where = data.draw(st.integers(0, len(text) - 1))
    replacement = data.draw(st.characters().filter(lambda c: c != text[where]))
    tampered = text[:where] + replacement + text[where + 1 :]
    parsed = parse_api_key(tampered)
    assert parsed is None or parsed[0] != key_id or secret_hash(parsed[1]) != digest


def test_trailing_newline_or_spaces_are_not_a_key() -> None:
    _, text, _ = new_api_key()
    assert parse_api_key(text + "\n") is None
    assert parse_api_key(" " + text) is None
    assert parse_api_key(text.upper()) is None


def test_tokens_have_the_asked_entropy_and_hash_stably() -> None:
    assert len(new_token()) == 43
    assert len(new_token(48)) == 64
    assert new_token() != new_token()
    token = new_token()
    assert token_hash(token) == token_hash(token) == hashlib.sha256(token.encode()).hexdigest()
    assert token_hash(token) != token_hash(token + "x")
