"""MQTT rights from werk scopes: property-based bounds, edge nodes, anonymous, the guard."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from werk.core.filters import matches
from werk.core.settings import Settings
from werk.iam.mqtt import FilterSet, PublishGuard, TopicAcl, topic_acl
from werk.iam.permissions import (
    BUILTIN_ROLES,
    COMMANDS_WRITE,
    MQTT_PUBLISH,
    MQTT_SUBSCRIBE,
    UNS_PUBLISH,
)
from werk.iam.scopes import Grant, OrgKind, Principal, PrincipalKind, Scope

ROOT = "uns/v1"
PRESS = "acme/berlin/machining/line-1/cell-1/press-7"
FORCE = f"{ROOT}/{PRESS}/_value/force"
FRESH = "fresh-tag"  # a tag name no generated filter names literally
LEVELS = ("a", "b", "c")
SPARKPLUG_TYPES = ("NBIRTH", "NDEATH", "NDATA", "DBIRTH", "DDEATH", "DDATA", "NCMD", "DCMD")
PERMISSIONS = (MQTT_PUBLISH, MQTT_SUBSCRIBE, COMMANDS_WRITE, UNS_PUBLISH, "mqtt:*", "*")


def principal(
    *grants: tuple[frozenset[str] | tuple[str, ...], tuple[str, ...]],
    kind: PrincipalKind = PrincipalKind.DEVICE,
    sparkplug: tuple[str, str] | None = None,
) -> Principal:
    made = tuple(Grant("r", frozenset(p), Scope(namespace=ns)) for p, ns in grants)
    return Principal("p1", kind, "p1", "org", OrgKind.OPERATOR, made, sparkplug=sparkplug)


# -- strategies ---------------------------------------------------------------------------

level = st.sampled_from(LEVELS)


@st.composite
def namespace_filters(draw: st.DrawFn) -> str:
    levels = draw(st.lists(st.sampled_from((*LEVELS, "+")), min_size=0, max_size=9))
    if not levels or draw(st.booleans()):
        levels.append("#")
    return "/".join(levels)


@st.composite
def principals(draw: st.DrawFn) -> Principal:
    grants = draw(
        st.lists(
            st.tuples(
                st.frozensets(st.sampled_from(PERMISSIONS), min_size=1, max_size=3),
                st.lists(namespace_filters(), min_size=1, max_size=2).map(tuple),
            ),
            min_size=1,
            max_size=3,
        )
    )
    edge = draw(st.none() | st.tuples(st.sampled_from(("g1", "g2")), st.sampled_from(("n1", "n2"))))
    kind = draw(st.sampled_from(list(PrincipalKind)))
    return principal(*grants, kind=kind, sparkplug=edge)


@st.composite
def uns_topics(draw: st.DrawFn) -> str:
    node = draw(st.lists(level, min_size=5, max_size=draw(st.sampled_from((7, 13)))))
    marker = draw(st.sampled_from(("_value", "_batch", "_cmd")))
    tag = [] if marker == "_batch" else [draw(st.sampled_from((*LEVELS, FRESH)))]
    return "/".join((ROOT, *node, marker, *tag))


@st.composite
def sparkplug_topics(draw: st.DrawFn) -> str:
    group = draw(st.sampled_from(("g1", "g2", "STATE")))
    kind = draw(st.sampled_from(SPARKPLUG_TYPES))
    node = draw(st.sampled_from(("n1", "n2", "werk")))
    device = draw(st.lists(st.sampled_from(("d1", "d2")), max_size=2))
    return "/".join(("spBv1.0", group, kind, node, *device))


junk_topics = st.lists(
    st.sampled_from(("$SYS", "uns", "v1", "a", "_value", "_cmd", "", "spBv1.0", "other")),
    min_size=1,
    max_size=9,
).map("/".join)
any_topic = uns_topics() | sparkplug_topics() | junk_topics


@st.composite
def covering_filters(draw: st.DrawFn, topic: str) -> str:
    """A filter that matches `topic`: some levels made '+', maybe the tail made '#'."""
    levels = topic.split("/")
    out = [lv if not draw(st.booleans()) else "+" for lv in levels]
    cut = draw(st.integers(min_value=0, max_value=len(levels)))
    if cut < len(levels) or draw(st.booleans()):
        out = [*out[:cut], "#"]
    return "/".join(out)


# -- the rights werk's scopes give, decided straight from the topic -----------------------


def uns_parts(topic: str) -> tuple[list[str], str, list[str]] | None:
    """(node, marker, tags) of a UNS topic, judged by structure alone; None if not one."""
    if not topic.startswith(ROOT + "/"):
        return None
    levels = topic[len(ROOT) + 1 :].split("/")
    at = next((i for i, lv in enumerate(levels) if lv.startswith("_")), None)
    if at is None or not 5 <= at <= 13 or levels[at] not in ("_value", "_batch", "_cmd"):
        return None
    node, tags = levels[:at], levels[at + 1 :]
    if len(tags) != (0 if levels[at] == "_batch" else 1):
        return None
    return node, levels[at], tags


def scope_allows_uns(p: Principal, topic: str, permission: str) -> bool | None:
    parts = uns_parts(topic)
    if parts is None:
        return None
    node, marker, tags = parts
    path = "/".join([*node, tags[0] if tags else FRESH])
    if permission == MQTT_PUBLISH:  # granted by name only, never by a catch-all `*`
        allowed = any(matches(f, path) for f in p.namespace_filters(permission, explicit=True))
    else:
        allowed = p.allows(permission, path=path)
    if marker == "_cmd" and permission == MQTT_PUBLISH:
        allowed = allowed and p.allows(COMMANDS_WRITE, path=path)
    return allowed


def edge_allows(p: Principal, topic: str, *, publish: bool) -> bool:
    levels = topic.split("/")
    if p.sparkplug is None or levels[0] != "spBv1.0":
        return False
    group, node = p.sparkplug
    edge = bool(p.namespace_filters(MQTT_PUBLISH, explicit=True))
    reads = edge and bool(p.namespace_filters(MQTT_SUBSCRIBE, explicit=True))
    if not publish and reads:
        if levels[1] == "STATE":
            return True
        if levels[1:4] == [group, "NCMD", node] and len(levels) == 4:
            return True
        return levels[1:4] == [group, "DCMD", node]
    if not publish or not edge or len(levels) < 4 or levels[1] != group:
        return False
    if levels[3] != node or levels[2] not in SPARKPLUG_TYPES[:6]:
        return False
    return len(levels) == (4 if levels[2].startswith("N") else 5)


# -- properties ----------------------------------------------------------------------------


@settings(max_examples=250)
@given(principals(), any_topic)
def test_a_topic_is_publishable_exactly_where_the_scopes_allow(p: Principal, topic: str) -> None:
    acl = topic_acl(p, ROOT)
    by_scope = scope_allows_uns(p, topic, MQTT_PUBLISH)
    expected = edge_allows(p, topic, publish=True) if by_scope is None else by_scope
    assert acl.may_publish(topic) is expected


@settings(max_examples=250)
@given(principals(), st.data())
def test_no_allowed_subscription_reaches_a_topic_outside_the_scopes(
    p: Principal, data: st.DataObject
) -> None:
    topic = data.draw(any_topic)
    topic_filter = data.draw(covering_filters(topic))
    assert matches(topic_filter, topic) or topic.startswith("$")
    if not topic_acl(p, ROOT).may_subscribe(topic_filter) or not matches(topic_filter, topic):
        return
    by_scope = scope_allows_uns(p, topic, MQTT_SUBSCRIBE)
    if by_scope is None:
        assert topic.startswith(ROOT + "/") or edge_allows(p, topic, publish=False)
    else:
        assert by_scope


@settings(max_examples=200)
@given(principals(), uns_topics())
def test_every_topic_the_scopes_let_read_can_be_subscribed(p: Principal, topic: str) -> None:
    assert topic_acl(p, ROOT).may_subscribe(topic) is scope_allows_uns(p, topic, MQTT_SUBSCRIBE)


@given(principals() | st.just(None), junk_topics)
def test_dollar_topics_are_never_published_nor_subscribed(p: Principal | None, rest: str) -> None:
    acl = TopicAcl.everything() if p is None else topic_acl(p, ROOT)
    for topic in (f"$SYS/{rest}", f"$internal/{rest}"):
        assert not acl.may_publish(topic)
        assert not acl.may_subscribe(topic)
    assert not acl.may_subscribe("$SYS/#")
    assert not acl.may_subscribe("$share/g/$SYS/#")


@given(st.lists(namespace_filters(), min_size=1, max_size=3), st.lists(namespace_filters()))
def test_no_device_subscribes_to_a_filter_starting_with_a_wildcard(
    namespace: list[str], others: list[str]
) -> None:
    device = principal(((MQTT_SUBSCRIBE,), tuple(namespace)))
    acl = topic_acl(device, ROOT)
    for topic_filter in ("#", "+/#", "+", "+/v1/#", *(f"+/{f}" for f in others)):
        assert not acl.may_subscribe(topic_filter)
        assert not acl.may_subscribe(f"$share/g/{topic_filter}")


@given(st.lists(namespace_filters(), max_size=6), any_topic)
def test_the_filter_tree_matches_like_the_mqtt_rules(filters: list[str], topic: str) -> None:
    assert FilterSet(filters).matches(topic) is any(matches(f, topic) for f in filters)


# -- examples ------------------------------------------------------------------------------


def test_a_device_publishes_its_subtree_but_no_commands_and_no_siblings() -> None:
    acl = topic_acl(principal(((MQTT_PUBLISH,), (f"{PRESS}/#",))), ROOT)
    assert acl.may_publish(f"{ROOT}/{PRESS}/_value/force")
    assert acl.may_publish(f"{ROOT}/{PRESS}/_batch")
    assert acl.may_publish(f"{ROOT}/{PRESS}/hydraulics/_value/pressure")
    assert not acl.may_publish(f"{ROOT}/{PRESS}/_cmd/force")
    assert not acl.may_publish(f"{ROOT}/acme/berlin/machining/line-1/cell-1/press-8/_value/x")
    assert not acl.may_publish(f"{ROOT}/acme/berlin/machining/line-1/cell-1/_batch")
    assert not acl.may_publish(f"{ROOT}/{PRESS}/_value/force/extra")
    assert not acl.may_publish(f"{ROOT}/{PRESS}/_value/+")
    assert not acl.subscribe


def test_a_batch_needs_the_whole_node_and_a_command_needs_commands_write() -> None:
    one_tag = principal(((MQTT_PUBLISH, COMMANDS_WRITE), (f"{PRESS}/force",)))
    acl = topic_acl(one_tag, ROOT)
    assert acl.may_publish(f"{ROOT}/{PRESS}/_value/force")
    assert acl.may_publish(f"{ROOT}/{PRESS}/_cmd/force")
    assert not acl.may_publish(f"{ROOT}/{PRESS}/_batch")
    assert not acl.may_publish(f"{ROOT}/{PRESS}/_value/speed")


def test_commands_need_both_permissions_over_the_same_tag() -> None:
    split = principal(
        ((MQTT_PUBLISH,), ("acme/#",)), ((COMMANDS_WRITE,), ("acme/berlin/machining/#",))
    )
    acl = topic_acl(split, ROOT)
    assert acl.may_publish(f"{ROOT}/{PRESS}/_cmd/force")
    assert not acl.may_publish(f"{ROOT}/acme/hamburg/a/b/c/_cmd/force")
    assert acl.may_publish(f"{ROOT}/acme/hamburg/a/b/c/_value/force")


def test_a_subscriber_may_take_its_whole_subtree_and_shared_subscriptions() -> None:
    reader = principal(((MQTT_SUBSCRIBE,), ("acme/berlin/#",)), kind=PrincipalKind.SERVICE)
    acl = topic_acl(reader, ROOT)
    assert acl.may_subscribe(f"{ROOT}/acme/berlin/#")
    assert acl.may_subscribe(f"$share/mes/{ROOT}/acme/berlin/#")
    assert acl.may_subscribe(f"{ROOT}/acme/berlin/+/+/+/+/_value/+")
    assert acl.may_subscribe(f"{ROOT}/{PRESS}/_cmd/force")
    assert not acl.may_subscribe(f"{ROOT}/acme/#")
    assert not acl.may_subscribe(f"{ROOT}/#")
    assert not acl.may_subscribe("$share//uns/v1/acme/berlin/#")
    assert not acl.may_subscribe(f"{ROOT}/acme/berlin/#/x")
    assert not acl.may_publish(f"{ROOT}/{PRESS}/_value/force")


def test_a_subtree_ending_in_wildcard_assets_is_only_given_per_depth() -> None:
    reader = principal(((MQTT_SUBSCRIBE,), ("a/b/c/d/e/+/+/#",)))
    acl = topic_acl(reader, ROOT)
    # uns/v1/a/b/c/d/e/+/+/# would also match uns/v1/a/b/c/d/e/_value/x: tag a/b/c/d/e/x
    assert not acl.may_subscribe(f"{ROOT}/a/b/c/d/e/+/+/#")
    assert acl.may_subscribe(f"{ROOT}/a/b/c/d/e/+/_value/+")
    assert acl.may_subscribe(f"{ROOT}/a/b/c/d/e/+/+/_batch")
    assert not acl.may_subscribe(f"{ROOT}/a/b/c/d/e/_value/+")


def test_an_edge_node_speaks_sparkplug_as_itself_only() -> None:
    edge_role = BUILTIN_ROLES["edge-node"][1]
    edge = principal((edge_role, ("acme/#",)), sparkplug=("plant", "cell-2"))
    acl = topic_acl(edge, ROOT)
    for kind in ("NBIRTH", "NDEATH", "NDATA"):
        assert acl.may_publish(f"spBv1.0/plant/{kind}/cell-2")
    for kind in ("DBIRTH", "DDEATH", "DDATA"):
        assert acl.may_publish(f"spBv1.0/plant/{kind}/cell-2/plc-1")
    assert not acl.may_publish("spBv1.0/plant/NDATA/cell-3")
    assert not acl.may_publish("spBv1.0/other/NDATA/cell-2")
    assert not acl.may_publish("spBv1.0/plant/NCMD/cell-2")
    assert not acl.may_publish("spBv1.0/STATE/werk")
    assert acl.may_subscribe("spBv1.0/plant/NCMD/cell-2")
    assert acl.may_subscribe("spBv1.0/plant/DCMD/cell-2/+")
    assert acl.may_subscribe("spBv1.0/plant/DCMD/cell-2/#")
    assert acl.may_subscribe("spBv1.0/STATE/werk")
    assert not acl.may_subscribe("spBv1.0/plant/NCMD/cell-3")
    assert not acl.may_subscribe("spBv1.0/#")
    assert not acl.may_subscribe("spBv1.0/plant/NDATA/cell-2")


def test_a_device_without_mqtt_permission_gets_nothing() -> None:
    nothing = principal((("uns:read", "history:read:*"), ("#",)), sparkplug=("g", "n"))
    assert topic_acl(nothing, ROOT).empty


def test_publish_decisions_are_cached_and_the_cache_stays_bounded() -> None:
    acl = topic_acl(principal(((MQTT_PUBLISH,), ("#",))), ROOT)
    for i in range(10_000):
        acl.may_publish(f"{ROOT}/a/b/c/d/e/_value/t{i}")
    assert len(acl._cache) <= 4096
    assert acl.may_publish(f"{ROOT}/a/b/c/d/e/_value/t1")


# -- publish guard ------------------------------------------------------------------------


def test_the_guard_allows_the_union_of_enabled_principals_and_werk_itself() -> None:
    enabled = [principal(((MQTT_PUBLISH,), (f"{PRESS}/#",)))]
    guard = PublishGuard(lambda: list(enabled), ROOT, sparkplug_host_id="werk")
    assert guard(f"{ROOT}/{PRESS}/_value/force")
    assert guard(f"{ROOT}/{PRESS}/_value/force")  # cached
    assert not guard(f"{ROOT}/acme/berlin/machining/line-1/cell-1/press-8/_value/force")
    assert not guard(f"{ROOT}/{PRESS}/_cmd/force")
    assert guard("spBv1.0/STATE/werk")
    assert guard("spBv1.0/plant/NCMD/cell-2")
    assert guard("spBv1.0/plant/DCMD/cell-2/plc-1")
    assert not guard("spBv1.0/STATE/other-host")
    assert not guard("spBv1.0/plant/NDATA/cell-2")
    enabled.clear()
    assert guard(f"{ROOT}/{PRESS}/_value/force")  # until refreshed
    guard.refresh()
    assert not guard(f"{ROOT}/{PRESS}/_value/force")


def test_the_guard_counts_what_the_rest_api_publishes_and_anonymous_access() -> None:
    api = principal(((UNS_PUBLISH,), ("acme/#",)), kind=PrincipalKind.USER)
    guard = PublishGuard(lambda: [api], ROOT)
    assert not guard(f"{ROOT}/{PRESS}/_value/force")  # a REST right is no MQTT right
    guard.expect(f"{ROOT}/{PRESS}/_value/force")  # werk's API is about to publish there
    assert guard(f"{ROOT}/{PRESS}/_value/force")
    assert not guard(f"{ROOT}/{PRESS}/_batch")
    assert not guard("spBv1.0/STATE/werk")
    lab = PublishGuard(list, ROOT, allow_anonymous=True)
    assert lab("anything/at/all")
    assert not lab("$SYS/x")


def test_a_principal_admitted_at_login_publishes_before_the_next_refresh() -> None:
    enabled: list[Principal] = []
    guard = PublishGuard(lambda: list(enabled), ROOT)
    newcomer = principal(((MQTT_PUBLISH,), (f"{PRESS}/#",)))
    assert not guard(FORCE)  # made through another werk process a moment ago
    guard.admit(newcomer)
    assert guard(FORCE)
    assert not guard(f"{ROOT}/acme/berlin/machining/line-1/cell-1/press-8/_value/force")
    enabled.append(newcomer)
    guard.refresh()  # the directory has it now
    assert guard(FORCE)
    enabled.clear()
    guard.refresh()
    assert not guard(FORCE)  # nothing of the admission is left over


def test_an_admission_made_while_the_directory_is_read_stays() -> None:
    newcomer = principal(((MQTT_PUBLISH,), (f"{PRESS}/#",)))
    guards: list[PublishGuard] = []

    def directory_read_before_the_commit() -> list[Principal]:
        if guards:
            guards[0].admit(newcomer)  # logs in while the read is under way
        return []

    guard = PublishGuard(directory_read_before_the_commit, ROOT)
    guards.append(guard)
    guard.refresh()
    assert guard(FORCE)


def test_an_admission_ends_when_the_directory_no_longer_has_the_principal() -> None:
    reads: list[int] = []

    def directory() -> list[Principal]:
        reads.append(1)
        return []  # disabled or deleted right after it logged in

    guard = PublishGuard(directory, ROOT, admit_check_s=0.05)
    guard.admit(principal(((MQTT_PUBLISH,), (f"{PRESS}/#",))))
    assert guard(FORCE) and len(reads) == 1
    time.sleep(0.1)
    assert not guard(FORCE)  # this call read the directory again
    assert len(reads) == 2
    assert not guard(FORCE) and len(reads) == 2  # and nothing is left to check


def test_an_admitted_principal_the_directory_has_stays_after_the_check() -> None:
    newcomer = principal(((MQTT_PUBLISH,), (f"{PRESS}/#",)))
    enabled: list[Principal] = []
    guard = PublishGuard(lambda: list(enabled), ROOT, admit_check_s=0.05)
    guard.admit(newcomer)
    enabled.append(newcomer)  # committed before it logged in
    time.sleep(0.1)
    assert guard(FORCE)


def test_a_failed_check_keeps_the_admission_and_tries_again() -> None:
    reads: list[int] = []

    def directory() -> list[Principal]:
        reads.append(1)
        if len(reads) == 2:
            raise OSError("database is down")
        return []

    guard = PublishGuard(directory, ROOT, admit_check_s=0.05)
    guard.admit(principal(((MQTT_PUBLISH,), (f"{PRESS}/#",))))
    time.sleep(0.1)
    assert guard(FORCE)  # the read failed: still admitted, logged, tried again later
    time.sleep(0.1)
    assert not guard(FORCE) and len(reads) == 3


def test_a_changed_principal_is_no_longer_admitted() -> None:
    guard = PublishGuard(list, ROOT)
    guard.admit(principal(((MQTT_PUBLISH,), (f"{PRESS}/#",))))
    guard.on_change("p1")  # disabled through another werk process
    assert not guard(FORCE)


def test_admitting_a_known_principal_changes_nothing() -> None:
    known = principal(((MQTT_PUBLISH,), (f"{PRESS}/#",)))
    enabled = [known]
    guard = PublishGuard(lambda: list(enabled), ROOT)
    guard.admit(known)  # the directory has it already: nothing is kept aside
    enabled.clear()
    guard.refresh()
    assert not guard(f"{ROOT}/{PRESS}/_value/force")


def test_a_failing_refresh_keeps_the_old_rights() -> None:
    calls: list[int] = []

    def provider() -> list[Principal]:
        calls.append(1)
        if len(calls) > 1:
            raise OSError("database is down")
        return [principal(((MQTT_PUBLISH,), (f"{PRESS}/#",)))]

    guard = PublishGuard(provider, ROOT)
    guard.on_change("p1")
    assert guard(f"{ROOT}/{PRESS}/_value/force")
    with pytest.raises(OSError, match="down"):
        guard.refresh()


def test_guard_settings_follow_werk_settings() -> None:
    off = Settings(sparkplug_enabled=False, mqtt_allow_anonymous=True)
    guard = PublishGuard.from_settings(list, off)
    assert guard("spBv1.0/STATE/werk")  # anonymous covers it
    strict = PublishGuard.from_settings(list, Settings(sparkplug_host_id="h1"))
    assert strict("spBv1.0/STATE/h1")
    assert not strict("spBv1.0/STATE/werk")
