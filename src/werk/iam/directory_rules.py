"""The directory's rules without storage: valid names, and what an actor may grant.

No privilege escalation: an actor may give (or take away) a permission within a scope
only when one of its own grants gives that permission over the whole of that scope.
"""

from __future__ import annotations

import re
import secrets
import string
from collections.abc import Iterable
from typing import Final

from werk.core.errors import Forbidden, TopicError, ValidationFailed
from werk.core.filters import check_levels
from werk.iam.permissions import ALL
from werk.iam.scopes import Grant, OrgKind, Principal, Scope, filter_within, permission_matches

__all__ = [
    "LAYERS",
    "MIN_PASSWORD",
    "check_email",
    "check_grantable",
    "check_layers",
    "check_name",
    "check_namespace",
    "check_password",
    "check_permissions",
    "check_slug",
    "check_text",
    "generate_password",
    "grantable",
    "scope_within",
]

NAME: Final = re.compile(r"[A-Za-z0-9._@-]{2,64}")
SLUG: Final = re.compile(r"[a-z0-9-]{2,40}")
EMAIL: Final = re.compile(r"[^@\s]+@[^@\s]+")
LAYERS: Final = ("raw", "processed", "business")
MIN_PASSWORD: Final = 12
MAX_PASSWORD: Final = 1024
MAX_FILTERS: Final = 100
GENERATED_PASSWORD: Final = 20
_ALPHABET: Final = string.ascii_letters + string.digits


def check_name(name: str, what: str = "name") -> str:
    """Refuse a name outside `[A-Za-z0-9._@-]{2,64}`."""
    if not NAME.fullmatch(name):
        raise ValidationFailed(
            f"a {what} is 2 to 64 letters, digits or . _ @ -, not {name!r}",
            code="bad_name",
            name=name,
        )
    return name


def check_slug(slug: str) -> str:
    """Refuse an organisation slug outside `[a-z0-9-]{2,40}`."""
    if not SLUG.fullmatch(slug):
        raise ValidationFailed(
            f"a slug is 2 to 40 lowercase letters, digits or -, not {slug!r}",
            code="bad_slug",
            slug=slug,
        )
    return slug


def check_text(value: str, what: str, *, max_length: int, required: bool = False) -> str:
    """Refuse free text that is too long, or empty when required."""
    if len(value) > max_length or (required and not value.strip()):
        raise ValidationFailed(
            f"the {what} must be {'1' if required else '0'} to {max_length} characters",
            code="bad_text",
            field=what,
        )
    return value


def check_email(email: str | None) -> str | None:
    """Refuse an address without exactly one @ between non-blank parts."""
    if email is not None and (len(email) > 320 or not EMAIL.fullmatch(email)):
        raise ValidationFailed(f"not an email address: {email!r}", code="bad_email")
    return email


def check_password(password: str, username: str) -> str:
    """Refuse a password shorter than 12 characters or containing the user name."""
    if len(password) < MIN_PASSWORD:
        raise ValidationFailed(
            f"a password needs at least {MIN_PASSWORD} characters", code="weak_password"
        )
    if len(password) > MAX_PASSWORD:
        raise ValidationFailed(
            f"a password has at most {MAX_PASSWORD} characters", code="bad_password"
        )
    if username.casefold() in password.casefold():
        raise ValidationFailed("a password must not contain the user name", code="weak_password")
    return password


def generate_password() -> str:
    """A random password of 20 letters and digits (about 119 bits)."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(GENERATED_PASSWORD))


def check_permissions(permissions: Iterable[str]) -> tuple[str, ...]:
    """Refuse unknown permissions; patterns (`area:*`, `*`) must cover a known one."""
    checked = tuple(dict.fromkeys(permissions))
    for permission in checked:
        if not any(permission_matches(permission, known) for known in ALL):
            raise ValidationFailed(
                f"unknown permission {permission!r}", code="bad_permission", permission=permission
            )
    if not checked:
        raise ValidationFailed("a role needs at least one permission", code="bad_permission")
    return checked


def check_namespace(filters: Iterable[str]) -> tuple[str, ...]:
    """Refuse an empty list or a malformed MQTT-style filter."""
    checked = tuple(dict.fromkeys(filters))
    if not checked or len(checked) > MAX_FILTERS:
        raise ValidationFailed(
            f"a scope needs 1 to {MAX_FILTERS} namespace filters", code="bad_filter"
        )
    for topic_filter in checked:
        if topic_filter.startswith("/") or len(topic_filter) > 1024:
            raise TopicError(f"not a namespace filter: {topic_filter!r}", code="bad_filter")
        check_levels(topic_filter)
    return checked


def check_layers(layers: Iterable[str] | None) -> tuple[str, ...] | None:
    """Refuse layers other than raw, processed and business."""
    if layers is None:
        return None
    checked = tuple(dict.fromkeys(layers))
    unknown = [layer for layer in checked if layer not in LAYERS]
    if unknown or not checked:
        raise ValidationFailed(
            f"layers are a non-empty subset of {list(LAYERS)}, not {list(checked)}",
            code="bad_layer",
        )
    return checked


def scope_within(inner: Scope, outer: Scope, *, other_org: bool = False) -> bool:
    """Whether everything `inner` reaches, `outer` reaches too.

    `other_org`: `inner` is for a principal of another organisation than `outer`'s
    holder, whose "own" organisation is then a different one.
    """
    if outer.org == "own" and (inner.org == "any" or other_org):
        return False
    if outer.layers is not None and (
        inner.layers is None or not set(inner.layers) <= set(outer.layers)
    ):
        return False
    return all(any(filter_within(f, o) for o in outer.namespace) for f in inner.namespace)


def grantable(
    actor: Principal, permissions: Iterable[str], scope: Scope, target_org: str | None = None
) -> bool:
    """Whether the actor holds every permission over every filter of `scope`.

    `target_org` is the organisation of the principal the scope is for: an actor's grant
    limited to its own organisation does not cover another organisation's principals.
    """
    other = target_org is not None and target_org != actor.org_id
    return all(
        any(_covers(grant, permission, topic_filter, scope, other) for grant in actor.grants)
        for permission in permissions
        for topic_filter in scope.namespace
    )


def _covers(grant: Grant, permission: str, topic_filter: str, scope: Scope, other: bool) -> bool:
    if not any(permission_matches(p, permission) for p in grant.permissions):
        return False
    part = Scope(namespace=(topic_filter,), layers=scope.layers, org=scope.org)
    return scope_within(part, grant.scope, other_org=other)


def check_grantable(
    actor: Principal, permissions: Iterable[str], scope: Scope, target_org: str | None = None
) -> None:
    """Refuse when the actor would give (or take) more than it holds itself."""
    if scope.org == "any" and actor.org_kind is not OrgKind.OPERATOR:
        raise Forbidden(
            "only the operator's administrators grant access to every organisation",
            code="privilege_escalation",
        )
    wanted = tuple(permissions)
    if not grantable(actor, wanted, scope, target_org):
        raise Forbidden(
            "you cannot grant permissions you do not hold over that scope yourself",
            code="privilege_escalation",
            permissions=list(wanted),
        )
