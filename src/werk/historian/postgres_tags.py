"""The tag dictionary of the PostgreSQL historian: tag paths to small integer ids."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

import psycopg

from werk.historian.postgres_schema import statement

_REGISTER: Final = """
    INSERT INTO {s}.tags (path, boolean)
    SELECT * FROM unnest(%s::text[], %s::boolean[])
    ON CONFLICT (path) DO UPDATE SET path = EXCLUDED.path
    RETURNING path, tag_id, boolean
"""
_FLIP: Final = "UPDATE {s}.tags SET boolean = true WHERE path = ANY(%s)"


@dataclass(slots=True)
class Registered:
    """Tags a transaction added; remembered once it commits."""

    ids: dict[str, int] = field(default_factory=dict)
    boolean: set[str] = field(default_factory=set)


class TagDictionary:
    """A cache of the `tags` table; new tags join it in the writer's own transaction."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.boolean: set[str] = set()
        self._lock = threading.Lock()

    def load(self, cur: psycopg.Cursor[Any]) -> None:
        """Read the whole dictionary."""
        cur.execute(statement("SELECT path, tag_id, boolean FROM {s}.tags ORDER BY tag_id"))
        rows = cur.fetchall()
        with self._lock:
            self.ids = {path: tag_id for path, tag_id, _ in rows}
            self.boolean = {path for path, _, boolean in rows if boolean}

    def resolve(
        self, cur: psycopg.Cursor[Any], tags: Iterable[str], boolean: set[str]
    ) -> tuple[dict[str, int], Registered]:
        """Ids of `tags`, registering unknown ones in the transaction of `cur`.

        Tags that now carry booleans are marked boolean in the same transaction.
        """
        ids = self.ids
        wanted = dict.fromkeys(tags)
        new = sorted(t for t in wanted if t not in ids)  # sorted: no deadlock between writers
        found = {t: ids[t] for t in wanted if t in ids}
        registered = Registered()
        if new:
            cur.execute(statement(_REGISTER), [new, [t in boolean for t in new]])
            for path, tag_id, is_boolean in cur.fetchall():
                registered.ids[path] = tag_id
                if is_boolean:
                    registered.boolean.add(path)
            found.update(registered.ids)
        flipped = sorted(t for t in boolean if t in ids and t not in self.boolean)
        if flipped:
            cur.execute(statement(_FLIP), [flipped])
            registered.boolean.update(flipped)
        return found, registered

    def remember(self, registered: Registered) -> None:
        """Add tags whose registration committed."""
        if registered.ids or registered.boolean:
            with self._lock:
                self.ids = {**self.ids, **registered.ids}
                self.boolean = self.boolean | registered.boolean

    def lookup(self, names: Iterable[str]) -> list[int]:
        """Ids of the known tags among `names`."""
        ids = self.ids
        return [ids[name] for name in names if name in ids]
