"""Logging set-up, called only from entry points."""

from __future__ import annotations

import logging

from rich.logging import RichHandler


def configure_logging(level: str = "INFO") -> None:
    """Send werk's logs to stderr through Rich, at `level`."""
    logging.basicConfig(
        level=level.upper(),
        format="%(name)s: %(message)s",
        datefmt="[%X]",
        handlers=[RichHandler(rich_tracebacks=True, show_path=False)],
        force=True,
    )
    for noisy in ("uvicorn.access", "nicegui", "httpx", "pymodbus"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # asyncua warns at every start that its server offers no encryption (the demo PLCs
    # and many plants do not), and logs each client connection at INFO.
    logging.getLogger("asyncua").setLevel(logging.ERROR)
