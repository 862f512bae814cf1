"""REST routes of the UNS: namespace, last-known values, publishing, quarantine, contracts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Final

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from sqlalchemy.orm import Session

from werk.core.access import check_path, requires, visible
from werk.core.errors import Forbidden
from werk.core.settings import Settings
from werk.uns import quarantine, service
from werk.uns.access import (
    QUARANTINE_READ,
    UNS_PUBLISH,
    UNS_READ,
    check_record,
    prune,
    quarantine_filter,
    quarantine_slice,
    tag_filter,
)
from werk.uns.mqtt import Publisher
from werk.uns.namespace import Namespace
from werk.uns.schemas import (
    ContractRead,
    PublishRequest,
    PublishResult,
    QuarantinePage,
    QuarantineRead,
    TagPage,
    TagRead,
    TreeRead,
)
from werk.uns.topics import check_filter, parse_tag_path

router = APIRouter(tags=["uns"])

_SEARCH_LIMIT: Final = 10_000


def _namespace(request: Request) -> Namespace:
    return request.app.state.namespace  # type: ignore[no-any-return]


def _settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def _publisher(request: Request) -> Publisher:
    return request.app.state.publisher  # type: ignore[no-any-return]


def _session(request: Request) -> Iterator[Session]:
    with request.app.state.sessions() as session:
        yield session


NamespaceDep = Annotated[Namespace, Depends(_namespace)]
SettingsDep = Annotated[Settings, Depends(_settings)]
PublisherDep = Annotated[Publisher, Depends(_publisher)]
SessionDep = Annotated[Session, Depends(_session)]
Limit = Annotated[int, Query(ge=1, le=10_000)]
MAX_ID: Final = 2**63 - 1  # the largest id SQLite and PostgreSQL store
RecordId = Annotated[int, Path(ge=1, le=MAX_ID)]


@router.get(
    "/namespace",
    response_model=TreeRead,
    summary="Namespace tree",
    dependencies=[requires(UNS_READ)],
)
def namespace_tree(
    request: Request,
    namespace: NamespaceDep,
    prefix: Annotated[str, Query(max_length=1024, description="a path such as acme/berlin")] = "",
) -> TreeRead:
    """The tree of every level and tag seen below `prefix`, within the caller's scope."""
    tree = namespace.tree(prefix.strip("/"))
    keep = tag_filter(request, UNS_READ)
    return TreeRead.model_validate((tree if keep is None else prune(tree, keep)).as_dict())


@router.get(
    "/namespace/search",
    response_model=TagPage,
    summary="Search tags",
    dependencies=[requires(UNS_READ)],
)
def search(
    request: Request,
    namespace: NamespaceDep,
    settings: SettingsDep,
    q: Annotated[str, Query(min_length=1, max_length=200)],
    limit: Limit = 50,
) -> TagPage:
    """Tags in the caller's scope whose path contains every word of `q`."""
    keep = tag_filter(request, UNS_READ)
    if keep is None:
        return service.search_tags(namespace=namespace, text=q, root=settings.uns_root, limit=limit)
    found = [s for s in namespace.search(q, limit=len(namespace)) if keep(s.path)]
    return service.tag_page(found[:_SEARCH_LIMIT], root=settings.uns_root, limit=limit)


@router.get(
    "/values",
    response_model=TagPage,
    summary="Last-known values of a subtree",
    dependencies=[requires(UNS_READ)],
)
def values(
    request: Request,
    namespace: NamespaceDep,
    settings: SettingsDep,
    filter: Annotated[
        str, Query(max_length=1024, description="tag-path filter with + and #, e.g. acme/#")
    ] = "#",
    limit: Limit = 1000,
) -> TagPage:
    """Last-known values of every tag in the caller's scope whose path matches `filter`."""
    states = namespace.select(check_filter(filter))
    keep = tag_filter(request, UNS_READ)
    if keep is not None:
        states = [s for s in states if keep(s.path)]
    return service.tag_page(states, root=settings.uns_root, limit=limit)


@router.get(
    "/tags/{path:path}",
    response_model=TagRead,
    summary="One tag",
    dependencies=[requires(UNS_READ)],
)
def tag(request: Request, path: str, namespace: NamespaceDep, settings: SettingsDep) -> TagRead:
    """Registry entry and last-known value of one tag."""
    parse_tag_path(path)
    check_path(request, UNS_READ, path)
    return service.tag_read(namespace.get(path), root=settings.uns_root)


@router.post(
    "/publish",
    response_model=PublishResult,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Publish a value",
    dependencies=[requires(UNS_PUBLISH)],
)
def publish(
    request: Request, body: PublishRequest, publisher: PublisherDep, settings: SettingsDep
) -> PublishResult:
    """Publish a value to the tag's `_value` topic; 202 once the broker has it."""
    parse_tag_path(body.tag)
    if not visible(request, UNS_PUBLISH, body.tag):
        raise Forbidden(
            f"publishing to {body.tag!r} is outside your scope", code="out_of_scope", tag=body.tag
        )
    return service.publish_value(publisher=publisher, request=body, root=settings.uns_root)


@router.get(
    "/quarantine",
    response_model=QuarantinePage,
    summary="Rejected messages",
    dependencies=[requires(QUARANTINE_READ)],
)
def quarantine_list(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    reason: Annotated[str | None, Query(max_length=64)] = None,
    before_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> QuarantinePage:
    """Rejected messages the caller may see with their reason, newest first."""
    keep = quarantine_filter(request, settings.uns_root)
    if keep is None:
        return service.quarantine_page(
            session=session, reason=reason, limit=limit, before_id=before_id
        )
    found = quarantine_slice(
        session=session, keep=keep, reason=reason, limit=limit, before_id=before_id
    )
    items = [service.quarantine_read(r) for r in found.records]
    return QuarantinePage(items=items, total=found.total, reasons=found.reasons)


@router.get(
    "/quarantine/{record_id}",
    response_model=QuarantineRead,
    summary="One rejected message",
    dependencies=[requires(QUARANTINE_READ)],
)
def quarantine_one(
    request: Request, record_id: RecordId, session: SessionDep, settings: SettingsDep
) -> QuarantineRead:
    """One rejected message."""
    record = quarantine.get_record(session=session, record_id=record_id)
    keep = quarantine_filter(request, settings.uns_root)
    return service.quarantine_read(check_record(record, keep))


@router.get(
    "/quarantine/{record_id}/payload",
    summary="Payload of a rejected message",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
    dependencies=[requires(QUARANTINE_READ)],
)
def quarantine_payload(
    request: Request, record_id: RecordId, session: SessionDep, settings: SettingsDep
) -> Response:
    """The payload exactly as it arrived."""
    record = quarantine.get_record(session=session, record_id=record_id)
    check_record(record, quarantine_filter(request, settings.uns_root))
    return Response(record.payload, media_type="application/octet-stream")


@router.get(
    "/contracts",
    response_model=list[ContractRead],
    summary="Payload contracts",
    dependencies=[requires(UNS_READ)],
)
def contracts(settings: SettingsDep) -> list[ContractRead]:
    """Every payload contract with its topic pattern and JSON Schema."""
    return service.contracts(root=settings.uns_root)
