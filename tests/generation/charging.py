"""Helpers of the charging-pipeline tests: a funded workspace, a second model, the quoted cost of
a usage, driving a stream from a sync test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from asgiref.sync import async_to_sync

from apps.credits.amounts import to_credits
from apps.credits.models import CreditAccount
from apps.credits.rates import credits_quote
from apps.credits.services import credits_grant
from apps.generation.models import AIModel, Provider
from apps.generation.providers.base import ProviderKind, TextDelta
from apps.generation.services import ChatGeneration, GenerationEnd
from apps.workspaces.models import Workspace

MESSAGES = [{"role": "user", "content": "one two three four five six seven"}]
REPLY_WORDS = 8  # "Echo:" and the seven words


def fund(workspace: Workspace, units: int = 10_000_000, key: str = "fund") -> None:
    credits_grant(workspace=workspace, amount=to_credits(units), source="purchased", idempotency_key=key)


def account(workspace: Workspace) -> CreditAccount:
    return CreditAccount.objects.get(workspace=workspace)


def second_model(model_id: str = "mock-backup", **options: Any) -> AIModel:
    provider = Provider.objects.create(name=f"Mock {model_id}", kind=ProviderKind.MOCK, options=options)
    return AIModel.objects.create(model_id=model_id, display_name=model_id, provider=provider, upstream_model=model_id)


def expected_units(model: str, input_tokens: int, output_tokens: int, cached: int = 0) -> int:
    return credits_quote(
        service="text",
        model=model,
        input_tokens=input_tokens - cached,
        output_tokens=output_tokens,
        cached_input_tokens=cached,
    ).units


async def arun(stream: AsyncIterator[Any]) -> tuple[str, GenerationEnd]:
    events = [event async for event in stream]
    end = events[-1]
    assert isinstance(end, GenerationEnd)
    return "".join(e.text for e in events if isinstance(e, TextDelta)), end


def run(stream: AsyncIterator[Any]) -> tuple[str, GenerationEnd]:
    """Stream to the end from a sync test, as a thread drives the pipeline (`async_to_sync`)."""
    return async_to_sync(arun)(stream)


async def take(stream: ChatGeneration, count: int) -> list[str]:
    """Take `count` deltas as a consumer the database keeps up with: each checkpoint (a
    background step, started after the delta that made it due) ends before the next delta."""
    texts: list[str] = []
    for _ in range(count):
        event = await stream.__anext__()
        assert isinstance(event, TextDelta)
        texts.append(event.text)
        if stream._checkpointing is not None:
            await stream._checkpointing
    return texts
