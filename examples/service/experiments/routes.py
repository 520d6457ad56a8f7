"""``/api/v1/experiments``: CRUD with variants and a split, tracking, results."""

from __future__ import annotations

import secrets
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from pydantic import Field, model_validator

from conveyor import BadInputError, NotFoundError, rate_limit
from examples.service.accounts.keys import Authenticated
from examples.service.backbone import backbone, database
from examples.service.database import iso
from examples.service.inputs import Body
from examples.service.problems import ExperimentNotRunning
from examples.service.repository import MAX_PAGE, Repository
from examples.service.specification import where

from .models import Experiment, Variant
from .results import experiment_results
from .tracking import ExperimentEventOccurred, bus_event_id, results_tag

router = APIRouter(prefix="/experiments", tags=["experiments"])
NAME = r"^[A-Za-z0-9_.:-]+$"


class VariantIn(Body):
    name: str = Field(min_length=1, max_length=64, pattern=NAME)
    weight: float = Field(gt=0, le=1000, allow_inf_nan=False)


def _distinct(variants: list[VariantIn]) -> None:
    if len({v.name for v in variants}) != len(variants):
        raise ValueError("variant names must be distinct")


class ExperimentIn(Body):
    name: str = Field(min_length=1, max_length=100)
    variants: list[VariantIn] = Field(min_length=2, max_length=20)
    """The first is the control; weights are the split's parts (50/50 is [1, 1])."""

    @model_validator(mode="after")
    def _names(self) -> ExperimentIn:
        _distinct(self.variants)
        return self


class ExperimentPatch(Body):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    status: Literal["draft", "running", "stopped"] | None = None
    weights: dict[str, float] | None = None
    """New split, by variant name (e.g. the recommendation's weights)."""


class TrackedEvent(Body):
    eventId: str = Field(min_length=1, max_length=64, pattern=NAME)
    variant: str = Field(min_length=1, max_length=64)
    kind: Literal["exposure", "conversion"]
    userId: str | None = Field(default=None, max_length=64)


class TrackedEvents(Body):
    events: list[TrackedEvent] = Field(min_length=1, max_length=1000)


def view(experiment: Experiment) -> dict[str, Any]:
    total = sum(v.weight for v in experiment.variants)
    return {
        "experimentId": experiment.id,
        "name": experiment.name,
        "status": experiment.status,
        "variants": [
            {
                "name": v.name,
                "weight": v.weight,
                "share": v.weight / total,
                "control": not v.position,
            }
            for v in experiment.variants
        ],
        "createdAt": iso(experiment.created_at),
        "createdBy": experiment.created_by,
        "updatedBy": experiment.updated_by,
    }


async def _owned(experiment_id: str, account_id: int) -> Experiment:
    async with database.reading() as session:
        experiment = await session.get(Experiment, experiment_id)
    if experiment is None or experiment.account_id != account_id:
        raise NotFoundError(f"no experiment {experiment_id}")
    return experiment


@router.post("", status_code=201)
async def create_experiment(body: ExperimentIn, caller: Authenticated) -> dict[str, Any]:
    experiment = Experiment(
        id="abt_" + secrets.token_hex(6),
        account_id=caller.account_id,
        name=body.name,
        variants=[
            Variant(position=i, name=v.name, weight=v.weight, exposures=0, conversions=0)
            for i, v in enumerate(body.variants)
        ],
    )
    async with database.writing() as session:
        session.add(experiment)
    return view(experiment)


@router.get("")
async def list_experiments(
    caller: Authenticated,
    status: Literal["draft", "running", "stopped"] | None = None,
    q: Annotated[str | None, Query(max_length=100, description="Part of the name.")] = None,
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
    size: Annotated[int, Query(ge=1, le=200)] = 20,
) -> dict[str, Any]:
    spec = where("account_id").eq(caller.account_id)
    if status is not None:
        spec = spec & where("status").eq(status)
    if q:
        spec = spec & where("name").contains(q)
    async with database.reading() as session:
        found = await Repository(Experiment, session).find(
            spec, page=page, size=size, order_by=[Experiment.created_at.desc(), Experiment.id]
        )
    return found.to_json(view)


@router.get("/{experiment_id}")
async def get_experiment(experiment_id: str, caller: Authenticated) -> dict[str, Any]:
    return view(await _owned(experiment_id, caller.account_id))


@router.patch("/{experiment_id}")
async def update_experiment(
    experiment_id: str, body: ExperimentPatch, caller: Authenticated
) -> dict[str, Any]:
    """Rename, start or stop, or change the split (weights by variant name)."""
    await _owned(experiment_id, caller.account_id)
    async with database.writing() as session:
        experiment = await session.get(Experiment, experiment_id)
        assert experiment is not None
        if body.name is not None:
            experiment.name = body.name
        if body.status is not None:
            experiment.status = body.status
        if body.weights is not None:
            by_name = {v.name: v for v in experiment.variants}
            unknown = sorted(set(body.weights) - set(by_name))
            if unknown or any(not 0 < w <= 1000 for w in body.weights.values()):
                raise BadInputError(
                    f"weights: known variants only ({', '.join(by_name)}), each in (0, 1000]"
                )
            for name, weight in body.weights.items():
                by_name[name].weight = weight
    await backbone.cache.invalidate_tags(results_tag(experiment_id))
    return view(await _owned(experiment_id, caller.account_id))


@router.delete("/{experiment_id}", status_code=204)
async def delete_experiment(experiment_id: str, caller: Authenticated) -> Response:
    await _owned(experiment_id, caller.account_id)
    async with database.writing() as session:
        experiment = await session.get(Experiment, experiment_id)
        if experiment is not None:
            await session.delete(experiment)
    await backbone.cache.invalidate_tags(results_tag(experiment_id))
    return Response(status_code=204)


@router.post("/{experiment_id}/events", status_code=202)
async def track(experiment_id: str, body: TrackedEvents, caller: Authenticated) -> dict[str, int]:
    """Up to 1,000 exposures and conversions, counted once per ``eventId`` (send a batch
    again after a timeout: nothing is counted twice)."""
    experiment = await _owned(experiment_id, caller.account_id)
    if experiment.status != "running":
        raise ExperimentNotRunning(f"experiment {experiment_id} is {experiment.status}")
    positions = {v.name: v.position for v in experiment.variants}
    unique = {event.eventId: event for event in body.events}
    unknown = sorted({e.variant for e in unique.values()} - set(positions))
    if unknown:
        raise BadInputError(f"unknown variant(s): {', '.join(unknown)}")
    events = [
        ExperimentEventOccurred(experiment_id, e.eventId, positions[e.variant], e.kind, e.userId)
        for e in unique.values()
    ]
    await backbone.events.publish_many(
        events, event_ids=[bus_event_id(experiment_id, e.event_id) for e in events]
    )
    return {"accepted": len(events)}


@router.get("/{experiment_id}/results", dependencies=[Depends(rate_limit("analysis"))])
async def results(experiment_id: str, caller: Authenticated) -> dict[str, Any]:
    """Rates, lift with its interval, z-test, chance to beat control, expected loss, the
    sample-ratio check and the recommended weights. See docs/reference-service.md."""
    experiment = await _owned(experiment_id, caller.account_id)
    return {"status": experiment.status, **await experiment_results(experiment_id)}
