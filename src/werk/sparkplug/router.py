"""REST routes of the Sparkplug host: edge nodes, rebirths, and writes to machines."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Final

from fastapi import APIRouter, Depends, Query, Request, Response, status

from werk.core.access import check_path, requires, visible
from werk.core.clock import to_datetime
from werk.core.errors import NotFound, Unavailable
from werk.sparkplug.access import (
    COMMANDS_READ,
    COMMANDS_WRITE,
    SPARKPLUG_ADMIN,
    SPARKPLUG_READ,
    check_node,
    node_visible,
    scoped_node,
)
from werk.sparkplug.models import CommandRecord
from werk.sparkplug.schemas import CommandCreate, CommandRead, HostRead, NodeRead, RebirthRead
from werk.sparkplug.service import PENDING, SparkplugService
from werk.sparkplug.views import command_read, node_read

router = APIRouter(tags=["sparkplug"])

_ASK_FACTOR: Final = 4


def _service(request: Request) -> SparkplugService:
    service: SparkplugService | None = request.app.state.runtime.sparkplug
    if service is None:
        raise Unavailable("the Sparkplug host is disabled (sparkplug_enabled)", code="disabled")
    return service


ServiceDep = Annotated[SparkplugService, Depends(_service)]


@router.get(
    "/sparkplug/host",
    response_model=HostRead,
    summary="The Sparkplug host",
    dependencies=[requires(SPARKPLUG_READ)],
)
def host(request: Request, service: ServiceDep) -> HostRead:
    """Host id, connection and how many of the caller's edge nodes are online."""
    nodes = [
        n
        for n in service.host.nodes()
        if node_visible(request, SPARKPLUG_READ, n.group, n.edge_node)
    ]
    client = service.client
    since = None if client is None else client.online_since_ns
    return HostRead(
        host_id=service.host_id,
        connected=client is not None and client.connected,
        online_since=None if since is None else to_datetime(since),
        nodes=len(nodes),
        nodes_online=sum(n.online for n in nodes),
    )


@router.get(
    "/sparkplug/nodes",
    response_model=list[NodeRead],
    summary="Edge nodes",
    dependencies=[requires(SPARKPLUG_READ)],
)
def nodes(request: Request, service: ServiceDep) -> list[NodeRead]:
    """Every edge node seen in the caller's scope, with devices, bdSeq, errors and buffer."""
    found = service.host.view(node_read)
    return [
        scoped_node(request, n)
        for n in found
        if node_visible(request, SPARKPLUG_READ, n.group, n.edge_node)
    ]


@router.get(
    "/sparkplug/nodes/{group}/{edge_node}",
    response_model=NodeRead,
    summary="One edge node",
    dependencies=[requires(SPARKPLUG_READ)],
)
def node(request: Request, group: str, edge_node: str, service: ServiceDep) -> NodeRead:
    """One edge node with every metric of every device."""
    check_node(request, SPARKPLUG_READ, group, edge_node)
    found = service.host.view_one(group, edge_node, partial(node_read, with_metrics=True))
    return scoped_node(request, found)


@router.post(
    "/sparkplug/nodes/{group}/{edge_node}/rebirth",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RebirthRead,
    summary="Request a rebirth",
    dependencies=[requires(SPARKPLUG_ADMIN)],
)
def rebirth(request: Request, group: str, edge_node: str, service: ServiceDep) -> RebirthRead:
    """Send NCMD Node Control/Rebirth; the node answers with new births."""
    check_node(request, SPARKPLUG_ADMIN, group, edge_node)
    service.rebirth(group, edge_node)
    return RebirthRead(group=group, edge_node=edge_node)


@router.post(
    "/commands",
    response_model=CommandRead,
    summary="Write to a machine",
    dependencies=[requires(COMMANDS_WRITE)],
)
def write(
    body: CommandCreate, request: Request, response: Response, service: ServiceDep
) -> CommandRead:
    """Send a value to the machine behind a tag; 200 with the outcome, 202 while pending."""
    check_path(request, COMMANDS_WRITE, body.tag)
    origin = f"api {request.client.host if request.client else 'unknown'}"
    record = service.write(tag_path=body.tag, value=body.value, requested_by="api", origin=origin)
    if body.wait_s > 0:
        record = service.wait(record.id, body.wait_s)
    if record.status == PENDING:
        response.status_code = status.HTTP_202_ACCEPTED
    return command_read(record)


@router.get(
    "/commands",
    response_model=list[CommandRead],
    summary="The command log",
    dependencies=[requires(COMMANDS_READ)],
)
def commands(
    request: Request,
    service: ServiceDep,
    tag: Annotated[str | None, Query(max_length=1024)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[CommandRead]:
    """Writes to machines behind tags in the caller's scope, newest first: who, what, when,
    from where, outcome."""
    if tag is not None and not visible(request, COMMANDS_READ, tag):
        return []
    return [command_read(r) for r in _visible_commands(request, service, tag, limit)]


@router.get(
    "/commands/{command_id}",
    response_model=CommandRead,
    summary="One command",
    dependencies=[requires(COMMANDS_READ)],
)
def command(request: Request, command_id: str, service: ServiceDep) -> CommandRead:
    """One write and its outcome."""
    record = service.command(command_id)
    if not visible(request, COMMANDS_READ, record.tag_path):
        raise NotFound(f"no command {command_id!r}", code="unknown_command")
    return command_read(record)


def _visible_commands(
    request: Request, service: SparkplugService, tag: str | None, limit: int
) -> list[CommandRecord]:
    """The newest `limit` commands of tags in the caller's scope, asking for more as needed."""
    asked = limit
    while True:
        found = service.commands(tag_path=tag, limit=asked)
        kept = [r for r in found if visible(request, COMMANDS_READ, r.tag_path)]
        if len(kept) >= limit or len(found) < asked:
            return kept[:limit]
        asked *= _ASK_FACTOR
