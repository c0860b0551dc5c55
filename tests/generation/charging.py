"""Fixtures and helpers of the charging-pipeline tests: seeded rate cards, a funded workspace,
the mock model, the quoted cost of a usage."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from apps.credits.amounts import to_credits
from apps.credits.models import CreditAccount
from apps.credits.rates import credits_quote
from apps.credits.services import credits_grant
from apps.generation.models import AIModel, Provider
from apps.generation.providers.base import ProviderKind, TextDelta
from apps.generation.services import GenerationEnd
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


def run(stream: Iterator[Any]) -> tuple[str, GenerationEnd]:
    events = list(stream)
    end = events[-1]
    assert isinstance(end, GenerationEnd)
    return "".join(e.text for e in events if isinstance(e, TextDelta)), end


async def arun(stream: AsyncIterator[Any]) -> tuple[str, GenerationEnd]:
    events = [event async for event in stream]
    end = events[-1]
    assert isinstance(end, GenerationEnd)
    return "".join(e.text for e in events if isinstance(e, TextDelta)), end
