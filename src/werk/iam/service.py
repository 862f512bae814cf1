"""The IAM facade the runtime builds once: directory, authentication and audit log."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from werk.core.settings import Settings
from werk.iam.audit import AuditLog
from werk.iam.authn import Authenticator
from werk.iam.directory import Directory, Listener

__all__ = ["Iam"]


class Iam:
    """Compose the directory, the authenticator and the audit log on one database."""

    def __init__(self, sessions: sessionmaker[Session], settings: Settings) -> None:
        self.sessions = sessions
        self.settings = settings
        self.audit = AuditLog(sessions)
        self.directory = Directory(sessions, self.audit)
        self.authn = Authenticator(sessions, settings, self.directory, self.audit)
        # First, so later listeners (MQTT gateway, Mosquitto files) never see stale caches.
        self.directory.add_listener(self.authn.forget)

    def on_change(self, listener: Listener) -> None:
        """Call `listener(principal_id)` after any change of that principal ("*": many)."""
        self.directory.add_listener(listener)
