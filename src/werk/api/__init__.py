"""The HTTP interface: app factory, lifespan, problem+json errors, /api/v1."""

from werk.api.app import create_app

__all__ = ["create_app"]
