"""Exposures and conversions through the event bus, counted once per event id.

The tracking endpoint publishes a batch of client events in one store step
(``publish_many`` with the client's ids, so a batch sent again publishes
nothing new). The ``experiments`` group takes them 500 at a time
(``batch=500``) and is ``idempotent``: ids it has processed are skipped.
The handler also keeps every event id in ``experiment_events`` and raises
the variants' counts only for the ids it inserted, in the same transaction,
so even two deliveries racing with the same id count it once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import msgspec
from sqlalchemy import select, update

from conveyor import EventMeta
from examples.service.backbone import backbone, database, metrics

from .models import ExperimentEvent, Variant

BATCH = 500


class ExperimentEventOccurred(msgspec.Struct, frozen=True):
    """One exposure or conversion of a user to a variant (``position``: 0 is control)."""

    experiment_id: str
    event_id: str
    position: int
    kind: str
    user_id: str | None = None


def bus_event_id(experiment_id: str, event_id: str) -> str:
    return f"{experiment_id}:{event_id}"


def results_tag(experiment_id: str) -> str:
    return f"experiment:{experiment_id}"


@backbone.events.subscribe(
    ExperimentEventOccurred, group="experiments", batch=BATCH, idempotent=True
)
async def count_events(
    events: Sequence[ExperimentEventOccurred], metas: Sequence[EventMeta]
) -> None:
    """Insert the events not seen before and raise the counts by them, in one transaction."""
    by_key = {(e.experiment_id, e.event_id): e for e in events}
    async with database.writing() as session:
        seen: set[tuple[str, str]] = set()
        for experiment_id in {e.experiment_id for e in events}:
            ids = [event_id for exp, event_id in by_key if exp == experiment_id]
            found = await session.execute(
                select(ExperimentEvent.event_id).where(
                    ExperimentEvent.experiment_id == experiment_id,
                    ExperimentEvent.event_id.in_(ids),
                )
            )
            seen.update((experiment_id, event_id) for (event_id,) in found)
        new = [event for key, event in by_key.items() if key not in seen]
        session.add_all(
            ExperimentEvent(
                experiment_id=e.experiment_id,
                event_id=e.event_id,
                position=e.position,
                kind=e.kind,
                user_id=e.user_id,
            )
            for e in new
        )
        counts = Counter((e.experiment_id, e.position, e.kind) for e in new)
        for (experiment_id, position, kind), count in counts.items():
            column = Variant.exposures if kind == "exposure" else Variant.conversions
            await session.execute(
                update(Variant)
                .where(Variant.experiment_id == experiment_id, Variant.position == position)
                .values({column.key: column + count})
            )
    for kind in ("exposure", "conversion"):
        metrics.experiment_events.labels(kind).inc(sum(1 for e in new if e.kind == kind))
    touched = {e.experiment_id for e in new}
    if touched:
        await backbone.cache.invalidate_tags(*map(results_tag, touched))
