"""The IAM facade the runtime builds once: directory, authentication and audit log."""

from __future__ import annotations

import threading

from sqlalchemy.orm import Session, sessionmaker

from werk.core.settings import Settings
from werk.iam.audit import AuditLog
from werk.iam.authn import Authenticator
from werk.iam.changes import Change, ChangeFeed
from werk.iam.directory import Directory, Listener

__all__ = ["Iam"]


class Iam:
    """Compose the directory, the authenticator and the audit log on one database.

    Changes made here are announced on the change feed, and the feed's changes from
    other werk processes on the same database are applied here (`changes.start`).
    """

    def __init__(self, sessions: sessionmaker[Session], settings: Settings) -> None:
        self.sessions = sessions
        self.settings = settings
        self.audit = AuditLog(sessions)
        self.directory = Directory(sessions, self.audit)
        self.changes = ChangeFeed(sessions, self._apply)
        self.authn = Authenticator(
            sessions, settings, self.directory, self.audit, announce=self.changes.publish
        )
        self._applying = threading.local()
        # First, so later listeners (MQTT gateway, Mosquitto files) never see stale caches.
        self.directory.add_listener(self.authn.forget)
        self.directory.add_listener(self._announce)

    def on_change(self, listener: Listener) -> None:
        """Call `listener(principal_id)` after any change of that principal ("*": many)."""
        self.directory.add_listener(listener)

    def _announce(self, principal_id: str) -> None:
        if not getattr(self._applying, "active", False):
            self.changes.publish("principal", principal_id)

    def _apply(self, change: Change) -> None:
        if change.kind != "principal":
            self.authn.apply(change)
            return
        self._applying.active = True
        try:
            self.directory.notify([change.subject])
        finally:
            self._applying.active = False
