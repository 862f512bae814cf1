"""Read a TOML configuration file with one-line errors."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from werk.core.errors import ValidationFailed


def read_toml(path: Path) -> dict[str, Any]:
    """The document of a TOML file; ValidationFailed (`bad_config`) naming the file."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValidationFailed(f"cannot read {path}: {exc.strerror}", code="bad_config") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ValidationFailed(f"{path}: not valid TOML: {exc}", code="bad_config") from exc
