"""REST routes of the UNS: namespace, last-known values, publishing, quarantine, contracts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status
from sqlalchemy.orm import Session

from werk.core.settings import Settings
from werk.uns import quarantine, service
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


@router.get("/namespace", response_model=TreeRead, summary="Namespace tree")
def namespace_tree(
    namespace: NamespaceDep,
    prefix: Annotated[str, Query(max_length=1024, description="a path such as acme/berlin")] = "",
) -> TreeRead:
    """The tree of every level and tag seen, below `prefix`."""
    return TreeRead.model_validate(namespace.tree(prefix.strip("/")).as_dict())


@router.get("/namespace/search", response_model=TagPage, summary="Search tags")
def search(
    namespace: NamespaceDep,
    settings: SettingsDep,
    q: Annotated[str, Query(min_length=1, max_length=200)],
    limit: Limit = 50,
) -> TagPage:
    """Tags whose path contains every word of `q`."""
    return service.search_tags(namespace=namespace, text=q, root=settings.uns_root, limit=limit)


@router.get("/values", response_model=TagPage, summary="Last-known values of a subtree")
def values(
    namespace: NamespaceDep,
    settings: SettingsDep,
    filter: Annotated[
        str, Query(max_length=1024, description="tag-path filter with + and #, e.g. acme/#")
    ] = "#",
    limit: Limit = 1000,
) -> TagPage:
    """Last-known values of every tag whose path matches `filter`."""
    states = namespace.select(check_filter(filter))
    return service.tag_page(states, root=settings.uns_root, limit=limit)


@router.get("/tags/{path:path}", response_model=TagRead, summary="One tag")
def tag(path: str, namespace: NamespaceDep, settings: SettingsDep) -> TagRead:
    """Registry entry and last-known value of one tag."""
    parse_tag_path(path)
    return service.tag_read(namespace.get(path), root=settings.uns_root)


@router.post(
    "/publish",
    response_model=PublishResult,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Publish a value",
)
def publish(body: PublishRequest, publisher: PublisherDep, settings: SettingsDep) -> PublishResult:
    """Publish a value to the tag's `_value` topic; 202 once the broker has it."""
    return service.publish_value(publisher=publisher, request=body, root=settings.uns_root)


@router.get("/quarantine", response_model=QuarantinePage, summary="Rejected messages")
def quarantine_list(
    session: SessionDep,
    reason: Annotated[str | None, Query(max_length=64)] = None,
    before_id: Annotated[int | None, Query(ge=1)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> QuarantinePage:
    """Rejected messages with their reason, newest first."""
    return service.quarantine_page(session=session, reason=reason, limit=limit, before_id=before_id)


@router.get(
    "/quarantine/{record_id}", response_model=QuarantineRead, summary="One rejected message"
)
def quarantine_one(record_id: int, session: SessionDep) -> QuarantineRead:
    """One rejected message."""
    return service.quarantine_read(quarantine.get_record(session=session, record_id=record_id))


@router.get(
    "/quarantine/{record_id}/payload",
    summary="Payload of a rejected message",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def quarantine_payload(record_id: int, session: SessionDep) -> Response:
    """The payload exactly as it arrived."""
    record = quarantine.get_record(session=session, record_id=record_id)
    return Response(record.payload, media_type="application/octet-stream")


@router.get("/contracts", response_model=list[ContractRead], summary="Payload contracts")
def contracts(settings: SettingsDep) -> list[ContractRead]:
    """Every payload contract with its topic pattern and JSON Schema."""
    return service.contracts(root=settings.uns_root)
