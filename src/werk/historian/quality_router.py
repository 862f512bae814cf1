"""REST routes of data quality: rules, violations, missing data, reprocessing."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Request

from werk.core.access import requires, visible
from werk.core.clock import from_datetime
from werk.core.errors import Forbidden
from werk.core.filters import check_levels
from werk.historian.access import (
    ADMIN_QUALITY,
    READ_QUALITY,
    check_everywhere,
    filter_in_scope,
    overlaps,
    scope_filters,
)
from werk.historian.quality_schemas import QualityReport, ReprocessRequest, ReprocessResult
from werk.historian.quality_service import QualityService
from werk.historian.rules import QualityRule

router = APIRouter(tags=["data quality"])


def _quality(request: Request) -> QualityService:
    return request.app.state.quality  # type: ignore[no-any-return]


def _whole_namespace(request: Request) -> None:
    check_everywhere(request, ADMIN_QUALITY)


QualityDep = Annotated[QualityService, Depends(_quality)]


@router.get(
    "/quality",
    response_model=QualityReport,
    summary="Data-quality report",
    dependencies=[requires(READ_QUALITY)],
)
def report(request: Request, quality: QualityDep) -> QualityReport:
    """Refiner status, rule violations per tag since start, and tags gone silent.

    Violations and silent tags are those of tags in the caller's scope; the refiner
    status describes the platform's refiner as a whole.
    """
    found = quality.report()
    return found.model_copy(
        update={
            "violations": [v for v in found.violations if visible(request, READ_QUALITY, v.tag)],
            "missing": [m for m in found.missing if visible(request, READ_QUALITY, m.tag)],
        }
    )


@router.get(
    "/quality/rules",
    response_model=list[QualityRule],
    summary="Quality rules",
    dependencies=[requires(READ_QUALITY)],
)
def rules(request: Request, quality: QualityDep) -> list[QualityRule]:
    """The rules in force, in matching order (the first rule matching a tag applies).

    A caller scoped to part of the namespace sees the rules that can match a tag there.
    """
    scope = scope_filters(request, READ_QUALITY)
    return [r for r in quality.rules() if any(overlaps(r.tags, f) for f in scope)]


@router.put(
    "/quality/rules",
    response_model=list[QualityRule],
    summary="Replace quality rules",
    dependencies=[requires(ADMIN_QUALITY), Depends(_whole_namespace)],
)
def replace_rules(
    quality: QualityDep,
    body: Annotated[list[QualityRule], Body(max_length=10_000)],
) -> list[QualityRule]:
    """Put a new rule set in force; it applies to data refined from now on."""
    return quality.replace(body)


@router.post(
    "/quality/reprocess",
    response_model=ReprocessResult,
    summary="Refine a range again",
    dependencies=[requires(ADMIN_QUALITY)],
)
def reprocess(request: Request, quality: QualityDep, body: ReprocessRequest) -> ReprocessResult:
    """Refine stored raw samples of matching tags in [start, end) with the current rules."""
    if not filter_in_scope(request, ADMIN_QUALITY, check_levels(body.tags)):
        raise Forbidden(
            f"the filter {body.tags!r} reaches beyond the subtrees you may administer",
            code="out_of_scope",
        )
    return quality.reprocess(body.tags, from_datetime(body.start), from_datetime(body.end))
