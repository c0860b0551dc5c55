"""The chat socket through the real ASGI application (origin check, session auth, routing), with
the mock provider streaming from a worker thread and the real credits ledger."""

from __future__ import annotations

import asyncio
import html
import re
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from constance.test.pytest import override_config

from aikeedo.asgi import application
from apps.chat import answers, services
from apps.chat.models import Conversation, Message
from apps.credits.amounts import to_credits
from apps.credits.models import CreditAccount
from apps.credits.rates import rate_cards_seed_defaults
from apps.credits.services import credits_grant
from apps.generation.catalog import catalog_seed_defaults
from apps.generation.models import AIModel, Generation, ModelFallback, Provider
from apps.workspaces.models import Workspace
from tests.conftest import Team
from tests.credits.helpers import assert_ledger_consistent

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = (b"origin", b"http://testserver")
FUNDS = 10_000_000
TIMEOUT = 5


@pytest.fixture
def model(db: Any) -> AIModel:
    catalog_seed_defaults(Provider, AIModel, ModelFallback)  # a flushed database lost the seeded rows
    rate_cards_seed_defaults()
    model = AIModel.objects.select_related("provider").get(model_id="mock-chat")
    set_options(model)
    return model


@pytest.fixture
def conversation(alpha: Team, model: AIModel) -> Conversation:
    fund(alpha.workspace)
    return Conversation.objects.create(workspace=alpha.workspace, user=alpha.member, model=model)


def set_options(model: AIModel, **options: Any) -> None:
    model.provider.options = {"latency_ms": 0, **options}
    model.provider.save()


def fund(workspace: Workspace, units: int = FUNDS) -> None:
    credits_grant(workspace=workspace, amount=to_credits(units), source="purchased", idempotency_key="fund")


def path(conversation: Conversation) -> str:
    return f"/ws/chat/{conversation.pk}/"


def headers_for(client_for: Callable[..., Any], user: Any) -> list[tuple[bytes, bytes]]:
    client = client_for(user)
    return [(b"cookie", f"sessionid={client.session.session_key}".encode()), ORIGIN]


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    async_to_sync(scenario)()


async def open_socket(conversation: Conversation, headers: list[tuple[bytes, bytes]]) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, path(conversation), headers=headers)
    connected, code = await communicator.connect()
    assert connected, code
    assert await communicator.receive_json_from(timeout=TIMEOUT) == {
        "type": "ready",
        "conversation": conversation.pk,
    }
    return communicator


async def until_done(communicator: WebsocketCommunicator) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    while not frames or frames[-1]["type"] not in ("done", "error"):
        frames.append(await communicator.receive_json_from(timeout=TIMEOUT))
    return frames


async def until_idle(conversation: Conversation, timeout: float = TIMEOUT) -> None:
    """Wait until the conversation's answer (and its title) has ended in this process: an
    answer outlives its sockets, and the test's event loop ends with the scenario."""
    deadline = time.monotonic() + timeout
    while answers.answer_running(conversation.pk) is not None or answers.answers_in_progress():
        assert time.monotonic() < deadline, "the answer did not end in time"
        await asyncio.sleep(0.02)


async def close(communicator: WebsocketCommunicator, conversation: Conversation) -> None:
    await until_idle(conversation)
    await communicator.disconnect()


def body_text(message_html: str) -> str:
    """The plain text of a rendered message's body (a message being generated is plain text)."""
    found = re.search(r"data-body>(.*?)</div>", message_html, re.S)
    assert found is not None, message_html
    return html.unescape(found.group(1))


@pytest.mark.outsider("ws/chat/<int:conversation_id>/")
def test_anonymous_is_refused(conversation: Conversation) -> None:
    async def scenario() -> None:
        communicator = WebsocketCommunicator(application, path(conversation), headers=[ORIGIN])
        assert await communicator.connect() == (False, 4401)

    run(scenario)


@pytest.mark.outsider("ws/chat/<int:conversation_id>/")
def test_outsiders_and_other_workspaces_cannot_attach(
    conversation: Conversation, outsider: Any, beta: Team, client_for: Callable[..., Any]
) -> None:
    headers = [headers_for(client_for, user) for user in (outsider, beta.owner)]

    async def scenario() -> None:
        for user_headers in headers:
            communicator = WebsocketCommunicator(application, path(conversation), headers=user_headers)
            assert await communicator.connect() == (False, 4404)

    run(scenario)


def test_unknown_conversation_is_refused(alpha: Team, model: AIModel, client_for: Callable[..., Any]) -> None:
    headers = headers_for(client_for, alpha.member)

    async def scenario() -> None:
        communicator = WebsocketCommunicator(application, "/ws/chat/999999/", headers=headers)
        assert await communicator.connect() == (False, 4404)

    run(scenario)


def test_send_streams_deltas_then_done_with_html_and_credits(
    alpha: Team, conversation: Conversation, client_for: Callable[..., Any]
) -> None:
    headers = headers_for(client_for, alpha.owner)  # any member of the workspace may attach
    frames: list[dict[str, Any]] = []

    async def scenario() -> None:
        communicator = await open_socket(conversation, headers)
        try:
            await communicator.send_json_to({"type": "send", "content": "hello **bold** world"})
            frames.extend(await until_done(communicator))
        finally:
            await close(communicator, conversation)

    run(scenario)
    reply = Message.objects.get(conversation=conversation, role="assistant")
    question = Message.objects.get(conversation=conversation, role="user")
    started = frames[0]
    assert started["type"] == "started"
    assert (started["message_id"], started["user_message_id"]) == (reply.pk, question.pk)
    assert (started["offset"], started["mine"]) == (0, True)
    # The server renders both messages: the question as sent, the answer's empty placeholder.
    assert f'data-message-id="{question.pk}"' in started["user_html"]
    assert "hello **bold** world" in started["user_html"]
    assert f'data-message-id="{reply.pk}"' in started["html"]
    assert 'data-status="streaming"' in started["html"]
    assert all(f["type"] == "delta" and f["message_id"] == reply.pk for f in frames[1:-1])
    offsets = [f["offset"] for f in frames[1:-1]]
    lengths = [0, *[f["offset"] + len(f["text"]) for f in frames[1:-1]][:-1]]
    assert offsets == lengths  # each delta starts where the previous one ended
    deltas = [f["text"] for f in frames[1:-1]]
    assert "".join(deltas) == reply.content == "Echo: hello **bold** world"
    done = frames[-1]
    assert done["type"] == "done"
    assert (done["message_id"], done["status"]) == (reply.pk, "complete")
    assert "<strong>bold</strong>" in done["html"]
    assert f'data-message-id="{reply.pk}"' in done["html"]  # the whole message, rendered once
    assert done["usage"] == {"input_tokens": reply.input_tokens, "output_tokens": reply.output_tokens}
    assert done["credits"] == str(to_credits(reply.credits_units))
    assert reply.credits_units > 0
    assert CreditAccount.objects.get(workspace=alpha.workspace).balance_units == FUNDS - reply.credits_units
    assert_ledger_consistent()


def test_stop_frame_ends_the_answer_as_stopped(
    alpha: Team, model: AIModel, conversation: Conversation, client_for: Callable[..., Any]
) -> None:
    set_options(model, latency_ms=30, reply=" ".join(f"w{i}" for i in range(40)))
    headers = headers_for(client_for, alpha.member)
    frames: list[dict[str, Any]] = []

    async def scenario() -> None:
        communicator = await open_socket(conversation, headers)
        try:
            await communicator.send_json_to({"type": "send", "content": "go"})
            frames.append(await communicator.receive_json_from(timeout=TIMEOUT))  # started
            frames.append(await communicator.receive_json_from(timeout=TIMEOUT))  # first delta
            await communicator.send_json_to({"type": "stop"})
            frames.extend(await until_done(communicator))
        finally:
            await close(communicator, conversation)

    run(scenario)
    done = frames[-1]
    assert done["status"] == "stopped"
    reply = Message.objects.get(conversation=conversation, role="assistant")
    assert reply.status == "stopped"
    delivered = "".join(f["text"] for f in frames if f["type"] == "delta")
    assert reply.content == delivered
    assert 0 < len(delivered.split()) < 40
    assert Generation.objects.get().outcome == Generation.Outcome.STOPPED
    assert CreditAccount.objects.get(workspace=alpha.workspace).balance_units == FUNDS - reply.credits_units
    assert_ledger_consistent()


def test_bad_frames_get_error_frames_and_the_socket_stays_open(
    alpha: Team, model: AIModel, conversation: Conversation, client_for: Callable[..., Any]
) -> None:
    headers = headers_for(client_for, alpha.member)

    async def scenario() -> None:
        communicator = await open_socket(conversation, headers)
        try:
            for frame in (
                {"type": "send", "content": ""},
                {"type": "send", "content": "   "},
                {"type": "send", "content": "x" * 20_001},
                {"type": "send"},
                {"type": "edit", "message_id": "1", "content": "x"},
                {"type": "dance"},
                ["send"],
            ):
                await communicator.send_json_to(frame)
                assert (await communicator.receive_json_from(timeout=TIMEOUT))["type"] == "error"
            await communicator.send_to(text_data="{not json")
            assert (await communicator.receive_json_from(timeout=TIMEOUT))["type"] == "error"
            # Editing a message that is not one of this conversation's user messages.
            await communicator.send_json_to({"type": "edit", "message_id": 999999, "content": "x"})
            frames = await until_done(communicator)
            assert frames[-1] == {
                "type": "error",
                "message": "That message cannot be edited.",
                "code": "chat_turn_refused",
            }
            # Regenerate with nothing to answer.
            await communicator.send_json_to({"type": "regenerate"})
            assert (await until_done(communicator))[-1]["type"] == "error"
        finally:
            await close(communicator, conversation)

    run(scenario)
    assert not Message.objects.filter(conversation=conversation).exists()


def test_second_send_while_streaming_is_refused(
    alpha: Team, model: AIModel, conversation: Conversation, client_for: Callable[..., Any]
) -> None:
    set_options(model, latency_ms=20, reply=" ".join(f"w{i}" for i in range(15)))
    headers = headers_for(client_for, alpha.member)

    async def scenario() -> None:
        communicator = await open_socket(conversation, headers)
        try:
            await communicator.send_json_to({"type": "send", "content": "first"})
            assert (await communicator.receive_json_from(timeout=TIMEOUT))["type"] == "started"
            await communicator.send_json_to({"type": "send", "content": "second"})
            frames = await until_done(communicator)
            errors = [f for f in frames if f["type"] == "error"]
            assert errors == [{"type": "error", "message": services.BUSY_MESSAGE, "code": "turn_in_progress"}]
            if frames[-1]["type"] == "error":  # the refusal arrived last: the answer is still going
                frames = await until_done(communicator)
            assert frames[-1]["type"] == "done"
            assert frames[-1]["status"] == "complete"
        finally:
            await close(communicator, conversation)

    run(scenario)
    assert Message.objects.filter(conversation=conversation, role="user").count() == 1
    assert_ledger_consistent()


def test_regenerate_and_edit_over_the_socket(
    alpha: Team, conversation: Conversation, client_for: Callable[..., Any]
) -> None:
    headers = headers_for(client_for, alpha.member)
    results: list[list[dict[str, Any]]] = []

    async def scenario() -> None:
        communicator = await open_socket(conversation, headers)
        try:
            await communicator.send_json_to({"type": "send", "content": "first"})
            results.append(await until_done(communicator))
            await communicator.send_json_to({"type": "regenerate"})
            results.append(await until_done(communicator))
            user_message_id = results[0][0]["user_message_id"]
            await communicator.send_json_to({"type": "edit", "message_id": user_message_id, "content": "edited"})
            results.append(await until_done(communicator))
        finally:
            await close(communicator, conversation)

    run(scenario)
    assert [r[-1]["status"] for r in results] == ["complete", "complete", "complete"]
    assert [(m.role, m.content) for m in Message.objects.filter(conversation=conversation)] == [
        ("user", "edited"),
        ("assistant", "Echo: edited"),
    ]
    answers = Generation.objects.filter(outcome="ok", reservation__idempotency_key__startswith="chat:")
    assert answers.count() == 3
    assert_ledger_consistent()


def test_disconnect_mid_answer_does_not_stop_it(
    alpha: Team, model: AIModel, conversation: Conversation, client_for: Callable[..., Any]
) -> None:
    """Closing or reloading the tab is not a stop: the answer is generated to its end, saved and
    charged once for all of it."""
    set_options(model, latency_ms=10, reply=" ".join(f"w{i}" for i in range(40)))
    headers = headers_for(client_for, alpha.member)

    async def scenario() -> None:
        communicator = await open_socket(conversation, headers)
        await communicator.send_json_to({"type": "send", "content": "go"})
        assert (await communicator.receive_json_from(timeout=TIMEOUT))["type"] == "started"
        assert (await communicator.receive_json_from(timeout=TIMEOUT))["type"] == "delta"
        await communicator.disconnect(timeout=TIMEOUT)
        assert answers.answer_running(conversation.pk) is not None  # still generating
        await until_idle(conversation)

    run(scenario)
    reply = Message.objects.get(conversation=conversation, role="assistant")
    assert reply.status == "complete"
    assert reply.content == " ".join(f"w{i}" for i in range(40))
    generation = Generation.objects.get(reservation__idempotency_key=f"chat:{reply.pk}")
    assert generation.outcome == Generation.Outcome.OK
    assert reply.credits_units == generation.credits_charged_units > 0
    assert generation.reservation is not None
    assert generation.reservation.status == "settled"
    conversation.refresh_from_db()
    assert conversation.turn_started_at is None
    account = CreditAccount.objects.get(workspace=alpha.workspace)
    assert account.held_units == 0
    charged = sum(Generation.objects.values_list("credits_charged_units", flat=True))  # the title's too
    assert account.balance_units == FUNDS - charged
    assert_ledger_consistent()


def test_stop_before_the_first_token_ends_at_once_and_charges_nothing(
    alpha: Team, model: AIModel, conversation: Conversation, client_for: Callable[..., Any]
) -> None:
    set_options(model, latency_ms=60_000)  # the first token would come in a minute
    headers = headers_for(client_for, alpha.member)
    frames: list[dict[str, Any]] = []

    async def scenario() -> None:
        communicator = await open_socket(conversation, headers)
        try:
            await communicator.send_json_to({"type": "send", "content": "go"})
            frames.append(await communicator.receive_json_from(timeout=TIMEOUT))  # started
            await communicator.send_json_to({"type": "stop"})
            frames.extend(await until_done(communicator))
        finally:
            await close(communicator, conversation)

    run(scenario)
    assert [f["type"] for f in frames] == ["started", "done"]
    assert frames[-1]["status"] == "stopped", frames[-1]
    assert Decimal(frames[-1]["credits"]) == 0
    assert Generation.objects.get().outcome == Generation.Outcome.STOPPED
    assert CreditAccount.objects.get(workspace=alpha.workspace).balance_units == FUNDS
    assert CreditAccount.objects.get(workspace=alpha.workspace).held_units == 0
    assert_ledger_consistent()


def test_a_second_tab_cannot_start_a_turn_while_one_streams(
    alpha: Team, model: AIModel, conversation: Conversation, client_for: Callable[..., Any]
) -> None:
    """The second tab sees the first tab's answer live; its own message is refused (to it
    alone) and never saved, so its page keeps the text in the composer instead of showing it
    as sent."""
    set_options(model, latency_ms=50, reply=" ".join(f"w{i}" for i in range(40)))  # streams for ~2 s
    first_tab, second_tab = headers_for(client_for, alpha.member), headers_for(client_for, alpha.member)
    results: dict[str, list[dict[str, Any]]] = {}

    async def scenario() -> None:
        one = await open_socket(conversation, first_tab)
        two = await open_socket(conversation, second_tab)
        try:
            await one.send_json_to({"type": "send", "content": "first"})
            assert (await one.receive_json_from(timeout=TIMEOUT))["type"] == "started"
            started = await two.receive_json_from(timeout=TIMEOUT)
            assert (started["type"], started["mine"]) == ("started", False)
            await two.send_json_to({"type": "send", "content": "from the other tab"})
            results["two"] = await until_done(two)
            if results["two"][-1]["type"] == "error":  # refused before the answer ended
                results["two"] += await until_done(two)
            results["one"] = await until_done(one)
        finally:
            await close(one, conversation)
            await two.disconnect()

    run(scenario)
    errors = [f for f in results["two"] if f["type"] == "error"]
    assert errors == [{"type": "error", "message": services.BUSY_MESSAGE, "code": "turn_in_progress"}]
    assert not [f for f in results["one"] if f["type"] == "error"]
    reply = Message.objects.get(conversation=conversation, role="assistant")
    for frames in results.values():
        assert frames[-1]["status"] == "complete"
        assert "".join(f["text"] for f in frames if f["type"] == "delta") == reply.content
    assert list(Message.objects.filter(conversation=conversation, role="user").values_list("content", flat=True)) == [
        "first"
    ]


def test_title_frame_follows_the_first_answer(
    alpha: Team, conversation: Conversation, client_for: Callable[..., Any]
) -> None:
    headers = headers_for(client_for, alpha.member)
    frames: list[dict[str, Any]] = []

    async def scenario() -> None:
        communicator = await open_socket(conversation, headers)
        try:
            await communicator.send_json_to({"type": "send", "content": "tell me about rainbows"})
            frames.extend(await until_done(communicator))
            frames.append(await communicator.receive_json_from(timeout=TIMEOUT))
        finally:
            await close(communicator, conversation)

    run(scenario)
    assert frames[-1] == {"type": "title", "title": "Echo: tell me about rainbows"}
    conversation.refresh_from_db()
    assert conversation.title == "Echo: tell me about rainbows"


@override_config(RATE_LIMIT_USER_RPM=1)
def test_web_chat_is_rate_limited_per_member(
    alpha: Team, conversation: Conversation, client_for: Callable[..., Any]
) -> None:
    headers = headers_for(client_for, alpha.member)
    results: list[list[dict[str, Any]]] = []

    async def scenario() -> None:
        communicator = await open_socket(conversation, headers)
        try:
            for text in ("first", "second", "third"):
                await communicator.send_json_to({"type": "send", "content": text})
                results.append(await until_done(communicator))
        finally:
            await close(communicator, conversation)

    run(scenario)
    assert results[0][-1]["status"] == "complete"
    # One message a minute: of the next two, at most one may fall in the next minute's window.
    # (The first answer's title frame may come in among the next frames.)
    errors = [[f for f in r if f["type"] == "error"] for r in results[1:]]
    refused = [e for e in errors if e]
    assert refused
    assert all(len(e) == 1 and "too quickly" in e[0]["message"] for e in refused)
    assert all(e[0]["code"] == "rate_limit_exceeded" for e in refused)
    sent = Message.objects.filter(conversation=conversation, role="user").count()
    assert sent == 3 - len(refused)
