"""MQTT topic rights derived from werk scopes, for the embedded gateway, Mosquitto and ingest.

A UNS topic carries tag paths (docs/adr/0002): a ``_value`` topic one tag, a ``_batch``
topic any tag of its node, a ``_cmd`` topic a write to the machine behind one tag. A
grant with `mqtt:publish` lets a principal publish the value topics of the tags its
namespace covers and the batch topics of the nodes it covers whole; a command topic
needs `commands:write` over the tag as well. Rights become MQTT filters per node depth
(five ISA-95 levels plus up to eight asset levels), so the same filters serve the
gateway's checks and Mosquitto's ACL file, which has no "write-only" exceptions.
`mqtt:subscribe` works alike, plus the whole subtree where that cannot leak a tag
outside it. A Sparkplug edge node publishes its births, deaths and data and reads its
commands and the hosts' STATE. Nobody gets a ``$`` topic (``$SYS``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from werk.core.errors import TopicError
from werk.core.filters import check_levels, filter_within, matches
from werk.core.settings import Settings
from werk.iam.permissions import COMMANDS_WRITE, MQTT_PUBLISH, MQTT_SUBSCRIBE
from werk.iam.scopes import Principal, PrincipalKind

__all__ = [
    "ANONYMOUS",
    "SPARKPLUG",
    "FilterSet",
    "IamMqttAuthority",
    "IamMqttGrant",
    "MqttCredentials",
    "PublishGuard",
    "TopicAcl",
    "publish_filters",
    "topic_acl",
]

_LOGGER = logging.getLogger(__name__)

ANONYMOUS: Final = "anonymous"
SPARKPLUG: Final = "spBv1.0"
MIN_NODE_LEVELS: Final = 5  # enterprise/site/area/line/cell
MAX_NODE_LEVELS: Final = 13  # plus at most eight asset levels
_NODE_MESSAGES: Final = ("NBIRTH", "NDEATH", "NDATA")
_DEVICE_MESSAGES: Final = ("DBIRTH", "DDEATH", "DDATA")
_VALUE: Final = "_value"
_BATCH: Final = "_batch"
_COMMAND: Final = "_cmd"
_SHARE: Final = "$share/"
_ACL_CACHE: Final = 4096
_GUARD_CACHE: Final = 100_000
_END: Final = "\x00"  # never a topic level: MQTT forbids NUL in topics

_Tree = dict[str, "_Tree"]
Pattern = tuple[str, ...]


class FilterSet:
    """MQTT filters in a tree, so a topic is matched in one walk down its levels."""

    __slots__ = ("_root",)

    def __init__(self, filters: Iterable[str] = ()) -> None:
        self._root: _Tree = {}
        for topic_filter in filters:
            self.add(topic_filter)

    def add(self, topic_filter: str) -> None:
        """Add one filter."""
        node = self._root
        for level in topic_filter.split("/"):
            node = node.setdefault(level, {})
        node[_END] = {}

    def matches(self, topic: str) -> bool:
        """Whether some filter matches `topic` (MQTT 5 §4.7, `$` topics included)."""
        return _walk(self._root, topic.split("/"), 0, topic.startswith("$"))


def _walk(node: _Tree, levels: list[str], i: int, dollar: bool) -> bool:
    wild = not (dollar and i == 0)  # '+' and '#' never match a first level starting with '$'
    if wild and "#" in node:
        return True
    if i == len(levels):
        return _END in node
    child = node.get(levels[i])
    if child is not None and _walk(child, levels, i + 1, dollar):
        return True
    child = node.get("+") if wild else None
    return child is not None and _walk(child, levels, i + 1, dollar)


class TopicAcl:
    """Where one principal may publish, and within which filters it may subscribe."""

    __slots__ = ("_cache", "_limit", "_matcher", "_no_wildcard_start", "publish", "subscribe")

    def __init__(
        self,
        publish: Iterable[str],
        subscribe: Iterable[str],
        *,
        no_wildcard_start: bool = False,
        cache_limit: int = _ACL_CACHE,
    ) -> None:
        self.publish: tuple[str, ...] = tuple(dict.fromkeys(publish))
        self.subscribe: tuple[str, ...] = tuple(dict.fromkeys(subscribe))
        self._no_wildcard_start = no_wildcard_start
        self._matcher = FilterSet(self.publish)
        self._cache: dict[str, bool] = {}
        self._limit = cache_limit

    @classmethod
    def everything(cls) -> TopicAcl:
        """Every topic but the `$` ones (anonymous access in a lab)."""
        return cls(("#",), ("#",))

    @property
    def empty(self) -> bool:
        """Whether the principal may neither publish nor subscribe anywhere."""
        return not self.publish and not self.subscribe

    def may_publish(self, topic: str) -> bool:
        """Whether a PUBLISH on `topic` is allowed (decisions are cached per topic)."""
        known = self._cache.get(topic)
        if known is None:
            known = _publishable(topic) and self._matcher.matches(topic)
            if len(self._cache) >= self._limit:
                self._cache.clear()
            self._cache[topic] = known
        return known

    def may_subscribe(self, topic_filter: str) -> bool:
        """Whether every topic `topic_filter` matches lies within an allowed filter."""
        wanted = _share_target(topic_filter)
        if wanted is None or wanted.startswith("$") or not _valid_filter(wanted):
            return False
        if self._no_wildcard_start and wanted.split("/", 1)[0] in ("+", "#"):
            return False
        return any(filter_within(wanted, allowed) for allowed in self.subscribe)


def _publishable(topic: str) -> bool:
    return bool(topic) and not topic.startswith("$") and not any(c in topic for c in "+#\x00")


def _valid_filter(topic_filter: str) -> bool:
    if "\x00" in topic_filter:
        return False
    try:
        check_levels(topic_filter)
    except TopicError:
        return False
    return True


def _share_target(topic_filter: str) -> str | None:
    """The filter a shared subscription (`$share/<group>/<filter>`) stands for."""
    if not topic_filter.startswith(_SHARE):
        return topic_filter
    _, _, rest = topic_filter.partition("/")
    group, _, target = rest.partition("/")
    if not group or not target or "+" in group or "#" in group:
        return None
    return target


NodePath = Callable[[str, str], str]
"""The ISA-95 path the Sparkplug routes give an edge node (group, edge node id)."""


def topic_acl(principal: Principal, uns_root: str, node_path: NodePath | None = None) -> TopicAcl:
    """The MQTT rights of `principal`: its grants' namespaces and its Sparkplug identity."""
    edge = _edge_allowed(principal, node_path)
    subscribe = [*_uns_subscribe(principal, uns_root), *_edge_subscribe(principal, edge)]
    device = principal.kind is PrincipalKind.DEVICE
    publish = publish_filters(principal, uns_root, node_path)
    return TopicAcl(publish, subscribe, no_wildcard_start=device)


def publish_filters(
    principal: Principal, uns_root: str, node_path: NodePath | None = None
) -> list[str]:
    """The filters of every topic `principal` may publish on."""
    edge = _edge_allowed(principal, node_path)
    return [*_uns_publish(principal, uns_root), *_edge_publish(principal, edge)]


def _edge_allowed(principal: Principal, node_path: NodePath | None) -> bool:
    """Whether the edge node's routed path lies inside its MQTT publish scope.

    Without it a node could publish, through Sparkplug, metrics that the routes place
    outside the subtree it was given.
    """
    ids = _edge_ids(principal)
    filters = principal.namespace_filters(MQTT_PUBLISH, explicit=True)
    if ids is None or not filters:
        return False
    return node_path is None or any(matches(f, node_path(*ids)) for f in filters)


def _uns_publish(principal: Principal, root: str) -> list[str]:
    data = _patterns(principal.namespace_filters(MQTT_PUBLISH, explicit=True))
    writable = _patterns(principal.namespace_filters(COMMANDS_WRITE))
    commands = _intersections(data, writable)
    return [*_data_topics(data, root), *_tag_topics(commands, root, _COMMAND)]


def _uns_subscribe(principal: Principal, root: str) -> list[str]:
    filters = [f for f in principal.namespace_filters(MQTT_SUBSCRIBE) if _valid_filter(f)]
    patterns = _patterns(filters)
    whole = [f"{root}/{f}" for f in filters if _whole_subtree_is_safe(f)]
    return [*whole, *_data_topics(patterns, root), *_tag_topics(patterns, root, _COMMAND)]


def _whole_subtree_is_safe(namespace_filter: str) -> bool:
    """Whether `<root>/<filter>` matches no topic of a tag outside `filter`.

    True for `<prefix>/#` when no level of the prefix can match a data-class marker:
    markers start with '_' and never come before the sixth level.
    """
    levels = namespace_filter.split("/")
    if levels[-1] != "#":
        return False
    head = levels[:-1]
    return all(
        not level.startswith("_") and (level != "+" or i < MIN_NODE_LEVELS)
        for i, level in enumerate(head)
    )


def _patterns(filters: Iterable[str]) -> list[Pattern]:
    """The tag-path patterns of fixed length (node depth plus tag) that `filters` cover."""
    found: dict[Pattern, None] = {}
    for namespace_filter in filters:
        if not _valid_filter(namespace_filter):
            continue
        for length in range(MIN_NODE_LEVELS + 1, MAX_NODE_LEVELS + 2):
            pattern = _expand(namespace_filter, length)
            # a node level starting with '_' would read as a data-class marker
            if pattern is not None and not any(s.startswith("_") for s in pattern[:-1]):
                found[pattern] = None
    return list(found)


def _expand(namespace_filter: str, length: int) -> Pattern | None:
    """The tag paths of `length` levels that `namespace_filter` matches, as one pattern."""
    levels = namespace_filter.split("/")
    if levels[-1] != "#":
        return tuple(levels) if len(levels) == length else None
    head = levels[:-1]
    return None if len(head) > length else (*head, *("+",) * (length - len(head)))


def _intersections(left: Sequence[Pattern], right: Sequence[Pattern]) -> list[Pattern]:
    both = (_intersect(a, b) for a in left for b in right)
    return list(dict.fromkeys(p for p in both if p is not None))


def _intersect(a: Pattern, b: Pattern) -> Pattern | None:
    if len(a) != len(b):
        return None
    levels: list[str] = []
    for x, y in zip(a, b, strict=True):
        if x != y and "+" not in (x, y):
            return None
        levels.append(y if x == "+" else x)
    return tuple(levels)


def _data_topics(patterns: Sequence[Pattern], root: str) -> list[str]:
    """Value topics of the patterns' tags, batch topics of the nodes they cover whole."""
    batches = [f"{root}/{'/'.join(p[:-1])}/{_BATCH}" for p in patterns if p[-1] == "+"]
    return [*_tag_topics(patterns, root, _VALUE), *batches]


def _tag_topics(patterns: Iterable[Pattern], root: str, marker: str) -> list[str]:
    return [f"{root}/{'/'.join(p[:-1])}/{marker}/{p[-1]}" for p in patterns]


def _edge_ids(principal: Principal) -> tuple[str, str] | None:
    if principal.sparkplug is None:
        return None
    group, node = principal.sparkplug
    valid = all(i and not any(c in i for c in "/+#\x00") for i in (group, node))
    return (group, node) if valid and group != "STATE" else None


def _edge_publish(principal: Principal, allowed: bool) -> list[str]:
    ids = _edge_ids(principal)
    if ids is None or not allowed:
        return []
    group, node = ids
    return [
        *(f"{SPARKPLUG}/{group}/{kind}/{node}" for kind in _NODE_MESSAGES),
        *(f"{SPARKPLUG}/{group}/{kind}/{node}/+" for kind in _DEVICE_MESSAGES),
    ]


def _edge_subscribe(principal: Principal, allowed: bool) -> list[str]:
    ids = _edge_ids(principal)
    if ids is None or not allowed or not principal.namespace_filters(MQTT_SUBSCRIBE, explicit=True):
        return []
    group, node = ids
    return [
        f"{SPARKPLUG}/{group}/NCMD/{node}",
        f"{SPARKPLUG}/{group}/DCMD/{node}/#",
        f"{SPARKPLUG}/STATE/#",
    ]


@dataclass(frozen=True, slots=True)
class IamMqttGrant:
    """What one MQTT connection may do (implements `werk.uns.gateway.MqttGrant`)."""

    principal_id: str
    acl: TopicAcl

    def may_publish(self, topic: str) -> bool:
        """Whether the connection may publish on `topic`."""
        return self.acl.may_publish(topic)

    def may_subscribe(self, topic_filter: str) -> bool:
        """Whether the connection may subscribe to `topic_filter`."""
        return self.acl.may_subscribe(topic_filter)


class MqttCredentials(Protocol):
    """Checks the credentials of an MQTT CONNECT (`werk.iam.authn.Authenticator`)."""

    def verify_mqtt(self, username: str, password: str) -> Principal | None:
        """The principal named `username` if `password` is one of its valid API keys."""
        ...


class IamMqttAuthority:
    """Authenticate MQTT clients and give them their rights (`werk.uns.gateway.MqttAuthority`).

    Clients without credentials never reach `connect`: the gateway lets them in with full
    access but ``$`` topics when `mqtt_allow_anonymous` is set (see `anonymous`).
    """

    def __init__(
        self,
        authn: MqttCredentials,
        settings: Settings,
        *,
        node_path: NodePath | None = None,
        on_login: Callable[[Principal], None] | None = None,
    ) -> None:
        self._authn = authn
        self._root = settings.uns_root
        self._anonymous = settings.mqtt_allow_anonymous
        self._node_path = node_path
        self._on_login = on_login

    def connect(
        self, username: str, password: str, client_id: str, peer: str
    ) -> IamMqttGrant | None:
        """The rights of a client logging in with a principal's name and API key; None refuses."""
        principal = self._authn.verify_mqtt(username, password)
        if principal is None:
            _LOGGER.info("MQTT login refused: %r (client %r from %s)", username, client_id, peer)
            return None
        acl = topic_acl(principal, self._root, self._node_path)
        if acl.empty:
            _LOGGER.info("MQTT login refused: %s holds no MQTT permission", principal.name)
            return None
        if self._on_login is not None:
            self._on_login(principal)
        return IamMqttGrant(principal.id, acl)

    def anonymous(self) -> IamMqttGrant | None:
        """The rights of a client without credentials: everything but `$` topics, if allowed."""
        return IamMqttGrant(ANONYMOUS, TopicAcl.everything()) if self._anonymous else None


PrincipalsProvider = Callable[[], Iterable[Principal]]
_EXPECT_S: Final = 300.0
_EXPECT_MAX: Final = 100_000
_ADMIT_CHECK_S: Final = 5.0


class PublishGuard:
    """Whether any enabled principal (or werk itself) may publish a topic.

    MQTT does not tell a subscriber who published a message, so ingest checks the
    union of every enabled principal's MQTT publish rights (granted by name, never by an
    administrator's `*`): what a misconfigured broker lets through outside all of them is
    quarantined. Werk's own publications count too: the Sparkplug host's STATE and its
    NCMD/DCMD commands, and each topic the REST API publishes to (`expect`, remembered
    for a few minutes). Call `refresh` after every IAM change.

    A principal made through another werk process becomes known here with the next poll
    of the change feed; if it logs in to this process's MQTT gateway before that, the
    gateway hands it over (`admit`), so its first messages are not quarantined. An
    admission lasts until the directory is read again, which happens at the latest
    `admit_check_s` later: then the principal counts if the directory has it, enabled.
    """

    def __init__(
        self,
        principals: PrincipalsProvider,
        uns_root: str,
        *,
        allow_anonymous: bool = False,
        sparkplug_host_id: str | None = None,
        node_path: NodePath | None = None,
        admit_check_s: float = _ADMIT_CHECK_S,
    ) -> None:
        self._principals = principals
        self._node_path = node_path
        self._root = uns_root
        self._anonymous = allow_anonymous
        self._host_id = sparkplug_host_id
        self._admit_check_s = admit_check_s
        self._lock = threading.Lock()  # rules, known principals and admissions change together
        self._reading = threading.Lock()  # one directory read at a time, applied in order
        self._admitted: dict[str, tuple[list[str], float]] = {}  # id -> (filters, when)
        self._check_at: float | None = None  # when to read the directory for the admitted
        self._rules = TopicAcl((), ())
        self._known: frozenset[str] = frozenset()
        self._expected: OrderedDict[str, float] = OrderedDict()
        self.refresh()

    @classmethod
    def from_settings(
        cls,
        principals: PrincipalsProvider,
        settings: Settings,
        node_path: NodePath | None = None,
    ) -> PublishGuard:
        """A guard for werk as `settings` configure it."""
        host_id = settings.sparkplug_host_id if settings.sparkplug_enabled else None
        return cls(
            principals,
            settings.uns_root,
            allow_anonymous=settings.mqtt_allow_anonymous,
            sparkplug_host_id=host_id,
            node_path=node_path,
        )

    def __call__(self, topic: str) -> bool:
        check_at = self._check_at
        if check_at is not None and time.monotonic() >= check_at:
            self._check_admitted()
        return self._rules.may_publish(topic) or self._was_expected(topic)

    def expect(self, topic: str) -> None:
        """Let werk's own next publication on `topic` through (a REST API publish)."""
        with self._lock:
            self._expected[topic] = time.monotonic() + _EXPECT_S
            self._expected.move_to_end(topic)
            while len(self._expected) > _EXPECT_MAX:
                self._expected.popitem(last=False)

    def _was_expected(self, topic: str) -> bool:
        with self._lock:
            until = self._expected.get(topic)
        return until is not None and until >= time.monotonic()

    def refresh(self) -> None:
        """Read the principals again and forget every cached decision.

        Admissions made before the read began end: a principal is committed before it can
        log in, so the read found it if it is still enabled. Those made during the read stay.
        """
        with self._reading:
            started = time.monotonic()
            filters, known = self._load()
            with self._lock:
                self._admitted = {
                    principal_id: admission
                    for principal_id, admission in self._admitted.items()
                    if admission[1] >= started and principal_id not in known
                }
                for admitted, _ in self._admitted.values():
                    filters.extend(admitted)
                known.update(self._admitted)
                self._rules = TopicAcl(filters, (), cache_limit=_GUARD_CACHE)
                self._known = frozenset(known)
                earliest = min((when for _, when in self._admitted.values()), default=None)
                self._check_at = None if earliest is None else earliest + self._admit_check_s

    def admit(self, principal: Principal) -> None:
        """Add the rights of `principal`, just authenticated, if they are not known yet."""
        if principal.id in self._known:
            return
        filters = publish_filters(principal, self._root, self._node_path)
        with self._lock:
            if principal.id in self._known:
                return  # a read that finished meanwhile has its current rights
            now = time.monotonic()
            self._admitted[principal.id] = (filters, now)
            self._known = self._known | {principal.id}
            self._rules = TopicAcl([*self._rules.publish, *filters], (), cache_limit=_GUARD_CACHE)
            if self._check_at is None:
                self._check_at = now + self._admit_check_s

    def _check_admitted(self) -> None:
        """Read the directory for the principals admitted a while ago; on failure, later."""
        with self._lock:
            self._check_at = None  # one caller reads; the others go on meanwhile
        try:
            self.refresh()
        except Exception:
            _LOGGER.exception("publish guard could not look up admitted principals")
            with self._lock:
                self._check_at = time.monotonic() + self._admit_check_s

    def on_change(self, principal_id: str) -> None:
        """Refresh after an IAM change (an `Iam.on_change` listener); log a failure."""
        try:
            self.refresh()
        except Exception:
            _LOGGER.exception("publish guard kept its old rights after change of %s", principal_id)

    def _load(self) -> tuple[list[str], set[str]]:
        """The filters of werk itself and every enabled principal, and those principals' ids."""
        filters = self._internal_filters()
        known: set[str] = set()
        for principal in self._principals():
            filters.extend(publish_filters(principal, self._root, self._node_path))
            known.add(principal.id)
        return filters, known

    def _internal_filters(self) -> list[str]:
        filters = ["#"] if self._anonymous else []
        if self._host_id is not None:
            filters += [
                f"{SPARKPLUG}/STATE/{self._host_id}",
                f"{SPARKPLUG}/+/NCMD/+",
                f"{SPARKPLUG}/+/DCMD/+/+",
            ]
        return filters
