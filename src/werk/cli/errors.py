"""How CLI commands report werk errors: one line on stderr, exit code 1."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import typer
from rich.console import Console

_F = TypeVar("_F", bound=Callable[..., Any])
err = Console(stderr=True)


def one_line_errors(func: _F) -> _F:
    """Turn werk errors into one line on stderr and exit code 1."""
    from werk.core.errors import WerkError

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except WerkError as exc:
            err.print(f"[red]error:[/red] {exc.message}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]
