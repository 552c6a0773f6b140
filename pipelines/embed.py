"""The embed batch job: compute the missing passage embeddings, batch by batch, each batch in its own
transaction (cached by model and text hash, so a re-run or an unchanged passage costs nothing)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text

from vkpp_learning.db import Database, open_database

BATCH = 256


@dataclass
class EmbedSummary:
    embedded: int = 0  # distinct passage texts embedded now
    already: int = 0  # passages whose text already had an embedding
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"embedded": self.embedded, "already": self.already, "seconds": round(self.seconds, 2)}


def missing_sql() -> str:
    """Distinct texts of passages with no embedding for the model, in passage order."""
    return (
        "SELECT p.text_hash, min(p.text) FROM passages AS p WHERE NOT EXISTS (SELECT 1 FROM embeddings AS e "
        "WHERE e.model = :model AND e.text_hash = p.text_hash) GROUP BY p.text_hash ORDER BY min(p.id)"
    )


def count_passages(db: Database) -> int:
    with db.session() as session:
        return int(session.execute(text("SELECT count(*) FROM passages")).scalar_one())


def embed(
    db_url: str | None = None,
    batch_size: int = BATCH,
    progress: bool = False,
    *,
    on_batch: Callable[[int], Any] | None = None,
) -> EmbedSummary:
    """Embed every passage text that has no embedding yet in the database at `db_url`."""
    from vkpp_learning.embeddings import MODEL_NAME, cached_encode

    started = time.perf_counter()
    db = open_database(db_url)
    summary = EmbedSummary()
    try:
        with db.session() as session:
            todo = [row[1] for row in session.execute(text(missing_sql()), {"model": MODEL_NAME})]
        summary.already = count_passages(db) - len(todo)
        with progress_bar(len(todo), progress) as bar:
            for start in range(0, len(todo), batch_size):
                batch = todo[start : start + batch_size]
                with db.writing() as session:
                    cached_encode(session, batch)
                summary.embedded += len(batch)
                bar.update(len(batch))
                if on_batch:
                    on_batch(len(batch))
    finally:
        db.dispose()
    summary.seconds = time.perf_counter() - started
    return summary


def progress_bar(total: int, enabled: bool) -> Any:
    """A tqdm bar on stderr, shown only on a terminal (stdout stays clean for --json)."""
    import sys

    from tqdm import tqdm

    return tqdm(total=total, unit="passage", file=sys.stderr, disable=None if enabled else True, desc="embed")
