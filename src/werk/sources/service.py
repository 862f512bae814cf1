"""State of the sources in the relational database; functions take a session, never commit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from werk.sources.models import LoadedFile, SourceRun, Watermark

RUNS_KEPT: Final = 200


@dataclass(frozen=True, slots=True)
class FileMark:
    """A file as a source saw it: size and modification time."""

    size: int
    mtime_ns: int


@dataclass(slots=True)
class RunCounts:
    """Rows a run read, accepted, rejected and newly stored."""

    rows_read: int = 0
    accepted: int = 0
    rejected: int = 0
    stored: int = 0


def loaded_files(*, session: Session, source: str) -> dict[str, FileMark]:
    """The files a source has loaded, by path."""
    rows = session.scalars(select(LoadedFile).where(LoadedFile.source == source))
    return {r.path: FileMark(r.size, r.mtime_ns) for r in rows}


def mark_loaded(
    *, session: Session, source: str, path: str, mark: FileMark, rows: int, at_ns: int
) -> None:
    """Remember that a source loaded a file as it is now."""
    loaded = session.get(LoadedFile, (source, path))
    if loaded is None:
        loaded = LoadedFile(source=source, path=path)
        session.add(loaded)
    loaded.size, loaded.mtime_ns, loaded.loaded_ns, loaded.rows = (
        mark.size, mark.mtime_ns, at_ns, rows
    )  # fmt: skip


def watermark(*, session: Session, source: str) -> str | None:
    """The stored cursor watermark of a SQL source (JSON), if any."""
    found = session.get(Watermark, source)
    return None if found is None else found.value_json


def set_watermark(*, session: Session, source: str, value_json: str, at_ns: int) -> None:
    """Move a SQL source's watermark."""
    found = session.get(Watermark, source)
    if found is None:
        session.add(Watermark(source=source, value_json=value_json, updated_ns=at_ns))
    else:
        found.value_json, found.updated_ns = value_json, at_ns


def start_run(*, session: Session, source: str, trigger: str, at_ns: int) -> int:
    """Log the start of a run; return its id."""
    run = SourceRun(
        source=source, trigger=trigger, started_ns=at_ns, rows_read=0, accepted=0, rejected=0,
        stored=0,
    )  # fmt: skip
    session.add(run)
    session.flush()
    return run.id


def finish_run(
    *, session: Session, run_id: int, counts: RunCounts, error: str | None, at_ns: int
) -> None:
    """Log the end of a run with what it did."""
    session.execute(
        update(SourceRun)
        .where(SourceRun.id == run_id)
        .values(
            finished_ns=at_ns,
            rows_read=counts.rows_read,
            accepted=counts.accepted,
            rejected=counts.rejected,
            stored=counts.stored,
            error=error,
        )
    )


def get_run(*, session: Session, run_id: int) -> SourceRun | None:
    """One run by id."""
    return session.get(SourceRun, run_id)


def runs(*, session: Session, source: str, limit: int) -> list[SourceRun]:
    """The newest runs of a source, newest first."""
    query = select(SourceRun).where(SourceRun.source == source)
    return list(session.scalars(query.order_by(SourceRun.id.desc()).limit(limit)))


def last_runs(*, session: Session) -> dict[str, SourceRun]:
    """The newest run of every source that ran."""
    newest = select(func.max(SourceRun.id)).group_by(SourceRun.source)
    found = session.scalars(select(SourceRun).where(SourceRun.id.in_(newest)))
    return {run.source: run for run in found}


def close_interrupted(*, session: Session, at_ns: int) -> int:
    """End the runs a stopped process left open; return how many."""
    result = session.execute(
        update(SourceRun)
        .where(SourceRun.finished_ns.is_(None))
        .values(finished_ns=at_ns, error="interrupted: werk stopped during the run")
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def prune_runs(*, session: Session, source: str, keep: int = RUNS_KEPT) -> None:
    """Forget all but the newest `keep` runs of a source."""
    cutoff = (
        select(SourceRun.id)
        .where(SourceRun.source == source)
        .order_by(SourceRun.id.desc())
        .offset(keep)
        .limit(1)
    )
    oldest_dropped = session.scalar(cutoff)
    if oldest_dropped is not None:
        session.execute(
            delete(SourceRun).where(SourceRun.source == source, SourceRun.id <= oldest_dropped)
        )
