"""The one error tree of werk.

Every error werk raises on purpose derives from `WerkError`; each carries a stable
`code`, a human `message`, and `params` for machines. The API turns them into
problem+json in one place (`werk.api.problems`), the CLI into one line.

    WerkError
    ├── ValidationFailed          input that breaks a rule (HTTP 422)
    │   ├── TopicError            a UNS topic or filter that is not valid
    │   └── PayloadError          a payload that fails its contract
    ├── Unauthenticated           no valid credentials came with the request (HTTP 401)
    ├── Forbidden                 the caller may not do or see this (HTTP 403)
    ├── TooManyAttempts           too many failed logins; wait and retry (HTTP 429)
    ├── NotFound                  the thing asked for does not exist (HTTP 404)
    ├── Conflict                  the request clashes with current state (HTTP 409)
    └── Unavailable               a dependency is down or not ready (HTTP 503)
        ├── BrokerUnavailable     the MQTT broker cannot be reached or started
        └── StorageUnavailable    a database cannot be reached or written
"""

from __future__ import annotations

from typing import Any, ClassVar


class WerkError(Exception):
    """Base of every error werk raises on purpose."""

    status: ClassVar[int] = 500
    default_code: ClassVar[str] = "internal"

    def __init__(self, message: str, *, code: str | None = None, **params: Any) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.params = params

    def __str__(self) -> str:
        return self.message


class ValidationFailed(WerkError):
    """Input breaks a rule."""

    status = 422
    default_code = "validation_failed"


class TopicError(ValidationFailed):
    """A UNS topic, tag path or topic filter is not valid."""

    default_code = "bad_topic"


class PayloadError(ValidationFailed):
    """A payload fails its contract."""

    default_code = "bad_payload"


class Unauthenticated(WerkError):
    """No valid credentials came with the request."""

    status = 401
    default_code = "unauthenticated"


class TooManyAttempts(WerkError):
    """Too many failed attempts: the caller must wait `retry_after_s` seconds."""

    status = 429
    default_code = "too_many_attempts"

    @property
    def retry_after_s(self) -> int:
        """Whole seconds until the next attempt may succeed."""
        return max(1, int(self.params.get("retry_after_s", 1)))


class Forbidden(WerkError):
    """The caller may not do or see this."""

    status = 403
    default_code = "forbidden"


class NotFound(WerkError):
    """The thing asked for does not exist."""

    status = 404
    default_code = "not_found"


class Conflict(WerkError):
    """The request clashes with the current state."""

    status = 409
    default_code = "conflict"


class Unavailable(WerkError):
    """A dependency is down or not ready."""

    status = 503
    default_code = "unavailable"


class BrokerUnavailable(Unavailable):
    """The MQTT broker cannot be reached or started."""

    default_code = "broker_unavailable"


class StorageUnavailable(Unavailable):
    """A database cannot be reached or written."""

    default_code = "storage_unavailable"
