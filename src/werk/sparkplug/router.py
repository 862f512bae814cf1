"""REST routes of the Sparkplug host: edge nodes, rebirths, and writes to machines."""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status

from werk.core.clock import to_datetime
from werk.core.errors import Unavailable
from werk.sparkplug.schemas import CommandCreate, CommandRead, HostRead, NodeRead, RebirthRead
from werk.sparkplug.service import PENDING, SparkplugService
from werk.sparkplug.views import command_read, node_read

router = APIRouter(tags=["sparkplug"])


def _service(request: Request) -> SparkplugService:
    service: SparkplugService | None = request.app.state.runtime.sparkplug
    if service is None:
        raise Unavailable("the Sparkplug host is disabled (sparkplug_enabled)", code="disabled")
    return service


ServiceDep = Annotated[SparkplugService, Depends(_service)]


@router.get("/sparkplug/host", response_model=HostRead, summary="The Sparkplug host")
def host(service: ServiceDep) -> HostRead:
    """Host id, connection and how many edge nodes are online."""
    nodes = service.host.nodes()
    client = service.client
    since = None if client is None else client.online_since_ns
    return HostRead(
        host_id=service.host_id,
        connected=client is not None and client.connected,
        online_since=None if since is None else to_datetime(since),
        nodes=len(nodes),
        nodes_online=sum(n.online for n in nodes),
    )


@router.get("/sparkplug/nodes", response_model=list[NodeRead], summary="Edge nodes")
def nodes(service: ServiceDep) -> list[NodeRead]:
    """Every edge node seen, with its devices, bdSeq, sequence errors and buffer depth."""
    return service.host.view(node_read)


@router.get(
    "/sparkplug/nodes/{group}/{edge_node}", response_model=NodeRead, summary="One edge node"
)
def node(group: str, edge_node: str, service: ServiceDep) -> NodeRead:
    """One edge node with every metric of every device."""
    return service.host.view_one(group, edge_node, partial(node_read, with_metrics=True))


@router.post(
    "/sparkplug/nodes/{group}/{edge_node}/rebirth",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RebirthRead,
    summary="Request a rebirth",
)
def rebirth(group: str, edge_node: str, service: ServiceDep) -> RebirthRead:
    """Send NCMD Node Control/Rebirth; the node answers with new births."""
    service.rebirth(group, edge_node)
    return RebirthRead(group=group, edge_node=edge_node)


@router.post("/commands", response_model=CommandRead, summary="Write to a machine")
def write(
    body: CommandCreate, request: Request, response: Response, service: ServiceDep
) -> CommandRead:
    """Send a value to the machine behind a tag; 200 with the outcome, 202 while pending."""
    origin = f"api {request.client.host if request.client else 'unknown'}"
    record = service.write(tag_path=body.tag, value=body.value, requested_by="api", origin=origin)
    if body.wait_s > 0:
        record = service.wait(record.id, body.wait_s)
    if record.status == PENDING:
        response.status_code = status.HTTP_202_ACCEPTED
    return command_read(record)


@router.get("/commands", response_model=list[CommandRead], summary="The command log")
def commands(
    service: ServiceDep,
    tag: Annotated[str | None, Query(max_length=1024)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[CommandRead]:
    """Every write to a machine, newest first: who, what, when, from where, outcome."""
    return [command_read(r) for r in service.commands(tag_path=tag, limit=limit)]


@router.get("/commands/{command_id}", response_model=CommandRead, summary="One command")
def command(command_id: str, service: ServiceDep) -> CommandRead:
    """One write and its outcome."""
    return command_read(service.command(command_id))
