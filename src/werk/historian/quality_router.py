"""REST routes of data quality: rules, violations, missing data, reprocessing."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Request

from werk.core.clock import from_datetime
from werk.historian.access import ADMIN_QUALITY, check_layer, check_permission
from werk.historian.layers import Layer
from werk.historian.quality_schemas import QualityReport, ReprocessRequest, ReprocessResult
from werk.historian.quality_service import QualityService
from werk.historian.rules import QualityRule

router = APIRouter(tags=["data quality"])


def _quality(request: Request) -> QualityService:
    return request.app.state.quality  # type: ignore[no-any-return]


QualityDep = Annotated[QualityService, Depends(_quality)]


@router.get("/quality", response_model=QualityReport, summary="Data-quality report")
def report(request: Request, quality: QualityDep) -> QualityReport:
    """Refiner status, rule violations per tag since start, and tags gone silent."""
    check_layer(request, Layer.PROCESSED)
    return quality.report()


@router.get("/quality/rules", response_model=list[QualityRule], summary="Quality rules")
def rules(request: Request, quality: QualityDep) -> list[QualityRule]:
    """The rules in force, in matching order (the first rule matching a tag applies)."""
    check_layer(request, Layer.PROCESSED)
    return quality.rules()


@router.put("/quality/rules", response_model=list[QualityRule], summary="Replace quality rules")
def replace_rules(
    request: Request,
    quality: QualityDep,
    body: Annotated[list[QualityRule], Body(max_length=10_000)],
) -> list[QualityRule]:
    """Put a new rule set in force; it applies to data refined from now on."""
    check_permission(request, ADMIN_QUALITY)
    return quality.replace(body)


@router.post("/quality/reprocess", response_model=ReprocessResult, summary="Refine a range again")
def reprocess(request: Request, quality: QualityDep, body: ReprocessRequest) -> ReprocessResult:
    """Refine stored raw samples of matching tags in [start, end) with the current rules."""
    check_permission(request, ADMIN_QUALITY)
    return quality.reprocess(body.tags, from_datetime(body.start), from_datetime(body.end))
