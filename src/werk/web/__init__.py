"""The web UI: NiceGUI pages served from the same FastAPI app as the API."""

from werk.web.mounting import mount

__all__ = ["mount"]
