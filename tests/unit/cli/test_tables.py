"""How `werk iam ...` prints tables: cells, and the first column kept whole."""

from __future__ import annotations

import pytest
from rich.console import Console

from werk.cli import iam_common
from werk.cli.iam_common import cell, show

KID = "vkB7jth9L5T88VvfLoasNky9YAJVrmQ7RCjVWTWsL1Y"  # an identifier with "T" at index 10


def test_cells_shorten_timestamps_only() -> None:
    assert cell("2026-11-22T10:00:00.123456+00:00") == "2026-11-22 10:00:00"
    assert cell(KID) == KID
    assert cell("abcdefghijTklmnopqrstu") == "abcdefghijTklmnopqrstu"
    assert cell(None) == "" and cell(True) == "yes" and cell(["a", 1]) == "a, 1"


@pytest.mark.parametrize("width", [60, 80, 200])
def test_first_column_stays_whole_on_narrow_terminals(
    width: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    console = Console(width=width, record=True)
    monkeypatch.setattr(iam_common, "console", console)
    rows = [{"kid": KID, "algorithm": "EdDSA", "created_at": "2026-11-22T10:00:00+00:00"}]
    columns = [
        ("kid", lambda r: r["kid"]),
        ("algorithm", lambda r: r["algorithm"]),
        ("created", lambda r: r["created_at"]),
    ]
    show(rows, columns, title="signing keys", as_json=False)
    assert KID in console.export_text()
