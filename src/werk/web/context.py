"""What the pages need from the running app, read from `app.state` when a page asks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker

from werk.core.settings import Settings
from werk.historian import HistorianStore
from werk.historian.quality_service import QualityService
from werk.sparkplug.service import SparkplugService
from werk.uns.namespace import Namespace


@dataclass(frozen=True, slots=True)
class WebContext:
    """Reach the parts the API lifespan put on `app.state`.

    The lifespan runs after `mount`, so the parts are looked up on every access.
    """

    app: FastAPI

    @property
    def settings(self) -> Settings:
        """The settings of the running process."""
        return cast(Settings, self.app.state.settings)

    @property
    def namespace(self) -> Namespace:
        """The tag registry with last-known values."""
        return cast(Namespace, self.app.state.namespace)

    @property
    def store(self) -> HistorianStore:
        """The historian with its raw, processed and business layers."""
        return cast(HistorianStore, self.app.state.store)

    @property
    def quality(self) -> QualityService:
        """The data-quality service: rules, violations and the refiner's state."""
        return cast(QualityService, self.app.state.quality)

    @property
    def sessions(self) -> sessionmaker[Session]:
        """Factory of relational database sessions."""
        return cast("sessionmaker[Session]", self.app.state.sessions)

    @property
    def root(self) -> str:
        """The UNS topic root such as ``uns/v1``."""
        return self.settings.uns_root

    @property
    def sparkplug(self) -> SparkplugService | None:
        """The Sparkplug host service, None when it is disabled."""
        return cast("SparkplugService | None", self.app.state.runtime.sparkplug)
