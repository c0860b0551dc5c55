"""The OpenAI-compatible API through the official `openai` SDK: models, chat (plain and
streaming), embeddings, and the SDK's exception types for our error statuses."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import openai
import pytest

from apps.credits.models import CreditAccount, Reservation
from apps.generation.models import Generation
from tests.api.conftest import FUNDS, Keyed, make_key, run, sdk
from tests.credits.helpers import assert_ledger_consistent

# The async views reach the database through channels' database_sync_to_async, which closes a
# connection it finds inside a transaction: these tests commit for real.
pytestmark = pytest.mark.django_db(transaction=True)

HELLO = [{"role": "user", "content": "one two three four"}]


def balance(keyed: Keyed) -> int:
    return CreditAccount.objects.get(workspace=keyed.workspace).balance_units


def test_lists_and_reads_models(keyed: Keyed) -> None:
    async def scenario() -> tuple[Any, Any]:
        client = sdk(keyed.raw)
        return await client.models.list(), await client.models.retrieve("mock-chat")

    models, one = run(scenario)
    ids = [m.id for m in models.data]
    assert "mock-chat" in ids
    assert "mock-embed" in ids
    assert "gpt-4o" not in ids  # its provider is not configured
    assert one.id == "mock-chat"
    assert one.owned_by == "mock"


def test_chat_completion_charges_and_reports_usage(keyed: Keyed) -> None:
    async def scenario() -> Any:
        return await sdk(keyed.raw).chat.completions.with_raw_response.create(model="mock-chat", messages=HELLO)

    raw = run(scenario)
    completion = raw.parse()
    assert completion.choices[0].message.content == "Echo: one two three four"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.completion_tokens == 5
    generation = Generation.objects.get()
    assert generation.api_key == keyed.key
    assert generation.outcome == "ok"
    charged = FUNDS - balance(keyed)
    assert charged == generation.credits_charged_units > 0
    assert Decimal(raw.headers["x-aikeedo-credits-charged"]) * 10_000 == charged
    assert Decimal(raw.headers["x-aikeedo-credits-remaining"]) * 10_000 == FUNDS - charged
    assert raw.headers["x-request-id"]
    assert "x-ratelimit-remaining-requests" in raw.headers
    reservation = Reservation.objects.get()
    assert (reservation.related_type, reservation.related_id) == ("apikeys.apikey", str(keyed.key.pk))
    assert_ledger_consistent()


def test_streaming_chunks_reassemble_with_usage_last(keyed: Keyed) -> None:
    async def scenario() -> list[Any]:
        stream = await sdk(keyed.raw).chat.completions.create(
            model="mock-chat", messages=HELLO, stream=True, stream_options={"include_usage": True}
        )
        return [chunk async for chunk in stream]

    chunks = run(scenario)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: one two three four"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens == 5
    assert FUNDS - balance(keyed) == Generation.objects.get().credits_charged_units > 0


def test_embeddings(keyed: Keyed) -> None:
    async def scenario() -> Any:
        client = sdk(keyed.raw)
        return (
            await client.embeddings.create(model="mock-embed", input=["alpha", "beta"]),
            await client.embeddings.create(model="mock-embed", input="alpha"),
        )

    both, one = run(scenario)
    assert [e.index for e in both.data] == [0, 1]
    assert len(both.data[0].embedding) == 256
    assert both.data[0].embedding == one.data[0].embedding  # deterministic
    assert both.data[0].embedding != both.data[1].embedding
    assert both.usage.prompt_tokens > 0
    assert FUNDS - balance(keyed) == sum(g.credits_charged_units for g in Generation.objects.all()) > 0
    assert_ledger_consistent()


def test_sdk_exception_types(keyed: Keyed) -> None:
    async def scenario() -> None:
        with pytest.raises(openai.AuthenticationError):
            await sdk("ak_not_a_key").models.list()
        with pytest.raises(openai.NotFoundError) as missing:
            await sdk(keyed.raw).chat.completions.create(model="no-such-model", messages=HELLO)
        assert missing.value.code == "model_not_found"
        with pytest.raises(openai.BadRequestError) as bad:
            await sdk(keyed.raw).chat.completions.create(model="mock-chat", messages=[])
        assert bad.value.param == "messages"

    run(scenario)


def test_insufficient_credits_is_402(alpha: Any, catalog: None) -> None:
    _, raw = make_key(alpha)

    async def scenario() -> None:
        with pytest.raises(openai.APIStatusError) as refused:
            await sdk(raw).chat.completions.create(model="mock-chat", messages=HELLO)
        assert refused.value.status_code == 402
        assert refused.value.code == "insufficient_credits"

    run(scenario)
    assert not Reservation.objects.exists()
