"""Streaming and tools through `/v1/chat/completions`, driven at the ASGI level where the test
must control the connection (a client that goes away mid-stream), and the fake upstream where a
real provider's wire format matters (tool calls)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from asgiref.testing import ApplicationCommunicator

from aikeedo.asgi import application
from apps.credits.models import CreditAccount, Reservation
from apps.credits.rates import credits_quote, rate_card_publish
from apps.generation.models import AIModel, Generation, Provider
from apps.generation.providers.base import ProviderKind
from apps.generation.tokens import count_message_tokens, count_tokens
from tests.api.conftest import FUNDS, Keyed, run, sdk
from tests.credits.helpers import assert_ledger_consistent
from tests.fakes.upstream import FakeUpstream

pytestmark = pytest.mark.django_db(transaction=True)

LONG = " ".join(f"w{i}" for i in range(60))


def set_mock(**options: Any) -> None:
    provider = Provider.objects.get(kind="mock")
    provider.options = {"latency_ms": 0, **options}
    provider.save()


def scope(raw: str) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"testserver"),
            (b"authorization", f"Bearer {raw}".encode()),
            (b"content-type", b"application/json"),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }


def sse_texts(body: bytes) -> list[str]:
    texts = []
    for line in body.decode().splitlines():
        if line.startswith("data: {"):
            payload = json.loads(line[6:])
            for choice in payload.get("choices", []):
                texts.append(choice["delta"].get("content") or "")
    return texts


async def stream_until(raw: str, received: bytearray, chunks: int) -> ApplicationCommunicator:
    """Start a streamed answer of the long reply and read it until `chunks` chunks arrived."""
    body = json.dumps({"model": "mock-chat", "messages": [{"role": "user", "content": "go"}], "stream": True})
    app = ApplicationCommunicator(application, scope(raw))
    await app.send_input({"type": "http.request", "body": body.encode(), "more_body": False})
    start = await app.receive_output(timeout=10)
    assert start["type"] == "http.response.start"
    assert start["status"] == 200
    while received.count(b"data: {") < chunks:
        received.extend((await app.receive_output(timeout=10)).get("body", b""))
    return app


def test_client_gone_mid_stream_is_charged_for_what_was_delivered(keyed: Keyed) -> None:
    set_mock(latency_ms=25, reply=LONG)
    received = bytearray()

    async def scenario() -> None:
        app = await stream_until(keyed.raw, received, 5)
        await app.send_input({"type": "http.disconnect"})
        await app.wait(timeout=10)

    run(scenario)
    delivered = "".join(sse_texts(bytes(received)))
    generation = Generation.objects.get()
    assert generation.outcome == Generation.Outcome.CLIENT_GONE
    # What was generated up to the disconnect: at least what the client got, far from all of it.
    assert generation.output_tokens >= count_tokens("mock-chat", delivered)
    assert generation.output_tokens < 60
    input_tokens = count_message_tokens("mock-chat", [{"role": "user", "content": "go"}])
    expected = credits_quote(
        service="text", model="mock-chat", input_tokens=input_tokens, output_tokens=generation.output_tokens
    ).units
    assert generation.credits_charged_units == expected
    account = CreditAccount.objects.get(workspace=keyed.workspace)
    assert (account.balance_units, account.held_units) == (FUNDS - expected, 0)
    assert Reservation.objects.get().status == Reservation.Status.SETTLED
    assert_ledger_consistent()


def test_provider_error_mid_stream_ends_with_an_error_event_and_charges_the_delivered_part(keyed: Keyed) -> None:
    import openai

    set_mock(reply=LONG, fail="after:4")
    seen: list[str] = []

    async def scenario() -> None:
        stream = await sdk(keyed.raw).chat.completions.create(
            model="mock-chat", messages=[{"role": "user", "content": "go"}], stream=True
        )

        async def read() -> None:
            async for chunk in stream:
                seen.append(chunk.choices[0].delta.content or "")

        with pytest.raises(openai.APIError):
            await read()

    run(scenario)
    assert "".join(seen) == "w0 w1 w2 w3"
    generation = Generation.objects.get()
    assert generation.outcome == "error"
    assert (
        FUNDS - CreditAccount.objects.get(workspace=keyed.workspace).balance_units == generation.credits_charged_units
    )
    assert generation.credits_charged_units > 0


def test_all_providers_down_is_503_before_any_byte_and_nothing_is_charged(keyed: Keyed) -> None:
    import openai

    set_mock(fail="before:503")

    async def scenario() -> None:
        with pytest.raises(openai.InternalServerError) as down:
            await sdk(keyed.raw).chat.completions.create(
                model="mock-chat", messages=[{"role": "user", "content": "go"}], stream=True
            )
        assert down.value.status_code == 503
        with pytest.raises(openai.InternalServerError):
            await sdk(keyed.raw).chat.completions.create(model="mock-chat", messages=[{"role": "user", "content": "x"}])

    run(scenario)
    account = CreditAccount.objects.get(workspace=keyed.workspace)
    assert (account.balance_units, account.held_units) == (FUNDS, 0)
    assert set(Reservation.objects.values_list("status", flat=True)) == {"released"}


@pytest.fixture
def tool_model(keyed: Keyed, upstream: FakeUpstream) -> AIModel:
    provider = Provider.objects.create(
        name="Fake", kind=ProviderKind.OPENAI_COMPATIBLE, base_url=upstream.base_url + "/v1", timeout_seconds=5
    )
    provider.set_api_key("sk-test")
    provider.save()
    rate_card_publish(service="text", model="fake-tools", acting_user=None, input_per_1k="1", output_per_1k="2")
    return AIModel.objects.create(
        model_id="fake-tools",
        display_name="Fake with tools",
        provider=provider,
        upstream_model="fake-fast",
        supports_tools=True,
    )


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@pytest.mark.parametrize("stream", [False, True])
def test_tool_calls_pass_through(keyed: Keyed, tool_model: AIModel, upstream: FakeUpstream, stream: bool) -> None:
    async def scenario() -> Any:
        client = sdk(keyed.raw)
        kwargs: dict[str, Any] = {
            "model": "fake-tools",
            "messages": [{"role": "user", "content": "weather in Paris"}],
            "tools": [WEATHER],
            "tool_choice": "auto",
        }
        if not stream:
            return await client.chat.completions.create(**kwargs)
        chunks = [c async for c in await client.chat.completions.create(stream=True, **kwargs)]
        return chunks

    result = run(scenario)
    sent = upstream.requests[-1]["body"]
    assert sent["tools"][0]["function"]["name"] == "get_weather"
    assert sent["tool_choice"] == "auto"
    if stream:
        calls = [tc for c in result if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
        assert calls[0].function.name == "get_weather"
        arguments = "".join(tc.function.arguments or "" for tc in calls)
        finish = [c.choices[0].finish_reason for c in result if c.choices][-1]
    else:
        call = result.choices[0].message.tool_calls[0]
        assert call.function.name == "get_weather"
        assert call.id
        arguments = call.function.arguments
        finish = result.choices[0].finish_reason
    assert json.loads(arguments) == {"city": "Paris"}
    assert finish == "tool_calls"
    generation = Generation.objects.get()
    assert generation.outcome == "ok"
    assert generation.credits_charged_units > 0


def test_two_concurrent_streams_through_one_key(keyed: Keyed) -> None:
    set_mock(latency_ms=5)

    async def one(text: str) -> str:
        stream = await sdk(keyed.raw).chat.completions.create(
            model="mock-chat", messages=[{"role": "user", "content": text}], stream=True
        )
        return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    async def scenario() -> list[str]:
        return list(await asyncio.gather(one("left side"), one("right side")))

    assert run(scenario) == ["Echo: left side", "Echo: right side"]
    assert Generation.objects.filter(outcome="ok").count() == 2
    assert_ledger_consistent()


def test_request_parameters_reach_the_upstream(keyed: Keyed, tool_model: AIModel, upstream: FakeUpstream) -> None:
    async def scenario() -> Any:
        return await sdk(keyed.raw).chat.completions.create(
            model="fake-tools",
            messages=[{"role": "system", "content": "Be terse."}, {"role": "user", "content": "json please"}],
            temperature=0.3,
            top_p=0.9,
            max_completion_tokens=50,
            stop=["END"],
            seed=7,
            presence_penalty=0.5,
            response_format={"type": "json_object"},
        )

    completion = run(scenario)
    assert completion.choices[0].message.content == "Echo: json please"
    sent = upstream.requests[-1]["body"]
    assert sent["messages"][0] == {"role": "system", "content": "Be terse."}
    assert (sent["temperature"], sent["top_p"], sent["max_tokens"], sent["stop"], sent["seed"]) == (
        0.3,
        0.9,
        50,
        ["END"],
        7,
    )
    assert sent["presence_penalty"] == 0.5
    assert sent["response_format"] == {"type": "json_object"}
    assert sent["stream_options"] == {"include_usage": True}  # usage is always asked of the upstream


def test_a_key_revoked_mid_stream_ends_the_stream_charged_for_what_was_delivered(keyed: Keyed, settings: Any) -> None:
    """The streamed answer re-checks its key every few seconds: revoked mid-answer, the stream
    ends with an `access_revoked` error event, settled for what was delivered."""
    from channels.db import database_sync_to_async
    from django.utils import timezone

    from apps.apikeys.models import ApiKey

    settings.STREAM_ACCESS_RECHECK_SECONDS = 0.05
    set_mock(latency_ms=25, reply=LONG)
    received = bytearray()

    async def scenario() -> None:
        app = await stream_until(keyed.raw, received, 3)
        await database_sync_to_async(ApiKey.objects.filter(pk=keyed.key.pk).update)(revoked_at=timezone.now())
        while True:
            message = await app.receive_output(timeout=10)
            received.extend(message.get("body", b""))
            if not message.get("more_body"):
                break
        await app.wait(timeout=10)

    run(scenario)
    text = bytes(received).decode()
    assert '"code": "access_revoked"' in text
    assert "[DONE]" not in text
    delivered = "".join(sse_texts(bytes(received)))
    assert 0 < len(delivered.split()) < 60
    generation = Generation.objects.get()
    assert generation.outcome == Generation.Outcome.STOPPED
    assert generation.output_tokens == count_tokens("mock-chat", delivered)
    account = CreditAccount.objects.get(workspace=keyed.workspace)
    assert (account.balance_units, account.held_units) == (FUNDS - generation.credits_charged_units, 0)
    assert generation.credits_charged_units > 0
    assert Reservation.objects.get().status == Reservation.Status.SETTLED
    assert_ledger_consistent()
