"""Answers that outlive their socket: reopening a conversation (or a second tab) shows the text
so far and follows the rest live, with nothing lost or repeated; the Stop button of any socket
stops the answer wherever it runs; an abandoned answer ends at the time limit; access that ends
stops it even with no socket open. Each ends in exactly one settle."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.layers import DEFAULT_CHANNEL_LAYER, channel_layers
from channels.testing import WebsocketCommunicator

from apps.accounts.services import user_suspend
from apps.chat import answers, services
from apps.chat.models import Conversation, Message
from apps.credits.models import CreditAccount, Reservation
from apps.generation.models import AIModel, Generation
from tests.chat.test_consumer import (
    FUNDS,
    TIMEOUT,
    body_text,
    close,
    fund,
    headers_for,
    open_socket,
    run,
    set_options,
    until_done,
    until_idle,
)
from tests.conftest import Team
from tests.credits.helpers import assert_ledger_consistent

pytestmark = pytest.mark.django_db(transaction=True)

WORDS = 40
REPLY = " ".join(f"w{i}" for i in range(WORDS))


@pytest.fixture
def conversation(alpha: Team, mock_model: AIModel, rates: None) -> Conversation:
    fund(alpha.workspace)
    return Conversation.objects.create(workspace=alpha.workspace, user=alpha.member, model=mock_model)


def _answer(conversation: Conversation) -> tuple[Message, Generation]:
    reply = Message.objects.get(conversation=conversation, role="assistant")
    generation = Generation.objects.select_related("reservation").get(reservation__idempotency_key=f"chat:{reply.pk}")
    return reply, generation


def _assert_settled_once(conversation: Conversation, reply: Message, generation: Generation) -> None:
    assert generation.reservation is not None
    assert generation.reservation.status == Reservation.Status.SETTLED
    assert reply.credits_units == generation.credits_charged_units > 0
    account = CreditAccount.objects.get(workspace=conversation.workspace)
    assert account.held_units == 0
    assert account.balance_units == FUNDS - sum(Generation.objects.values_list("credits_charged_units", flat=True))
    conversation.refresh_from_db()
    assert conversation.turn_started_at is None
    assert_ledger_consistent()


def _followed(frames: list[dict[str, Any]]) -> str:
    """The answer as a joining page shows it: the snapshot's text, then each delta applied at
    its offset, which must be exactly where the text so far ends (no gap, no repeat)."""
    started = frames[0]
    assert started["type"] == "started"
    text = body_text(started["html"])
    assert started["offset"] == len(text)
    for frame in frames[1:-1]:
        if frame["type"] != "delta":
            continue
        assert frame["offset"] == len(text), (frame, text)
        text += frame["text"]
    return text


def test_reopening_mid_answer_shows_the_text_so_far_then_the_rest(
    alpha: Team, mock_model: AIModel, conversation: Conversation, client_for: Callable[..., Any]
) -> None:
    """The tab closes mid-answer; a new one opens the conversation: it gets the partial text
    first, then only the newer characters, and the answer completes."""
    set_options(mock_model, latency_ms=25, reply=REPLY)
    first, second = headers_for(client_for, alpha.member), headers_for(client_for, alpha.member)
    seen: list[dict[str, Any]] = []

    async def scenario() -> None:
        one = await open_socket(conversation, first)
        await one.send_json_to({"type": "send", "content": "go"})
        assert (await one.receive_json_from(timeout=TIMEOUT))["type"] == "started"
        for _ in range(3):
            assert (await one.receive_json_from(timeout=TIMEOUT))["type"] == "delta"
        await one.disconnect()
        two = await open_socket(conversation, second)
        seen.extend(await until_done(two))
        await close(two, conversation)

    run(scenario)
    reply, generation = _answer(conversation)
    assert seen[0]["mine"] is False
    assert 0 < seen[0]["offset"] < len(REPLY)  # joined mid-answer
    assert seen[-1]["type"] == "done"
    assert seen[-1]["status"] == "complete"
    assert _followed(seen) == reply.content == REPLY
    assert generation.outcome == Generation.Outcome.OK
    _assert_settled_once(conversation, reply, generation)


def test_a_second_socket_sees_the_same_stream_live(
    alpha: Team, mock_model: AIModel, conversation: Conversation, client_for: Callable[..., Any]
) -> None:
    set_options(mock_model, latency_ms=20, reply=REPLY)
    first, second = headers_for(client_for, alpha.member), headers_for(client_for, alpha.owner)
    frames: dict[str, list[dict[str, Any]]] = {}

    async def scenario() -> None:
        one = await open_socket(conversation, first)
        await one.send_json_to({"type": "send", "content": "go"})
        frames["one"] = [await one.receive_json_from(timeout=TIMEOUT)]
        frames["one"].append(await one.receive_json_from(timeout=TIMEOUT))
        two = await open_socket(conversation, second)  # another member, another device
        frames["two"] = await until_done(two)
        frames["one"] += await until_done(one)
        await close(one, conversation)
        await two.disconnect()

    run(scenario)
    reply, _ = _answer(conversation)
    assert _followed(frames["one"]) == _followed(frames["two"]) == reply.content == REPLY
    assert frames["one"][-1]["html"] == frames["two"][-1]["html"]


def test_stop_from_a_second_socket_stops_the_answer_of_the_first(
    alpha: Team, mock_model: AIModel, conversation: Conversation, client_for: Callable[..., Any]
) -> None:
    set_options(mock_model, latency_ms=30, reply=REPLY)
    first, second = headers_for(client_for, alpha.member), headers_for(client_for, alpha.member)
    frames: dict[str, list[dict[str, Any]]] = {}

    async def scenario() -> None:
        one = await open_socket(conversation, first)
        await one.send_json_to({"type": "send", "content": "go"})
        assert (await one.receive_json_from(timeout=TIMEOUT))["type"] == "started"
        two = await open_socket(conversation, second)
        frames["two"] = [await two.receive_json_from(timeout=TIMEOUT)]
        assert frames["two"][0]["type"] == "started"
        while frames["two"][0]["offset"] == 0 and len(frames["two"]) == 1:  # some text first
            frames["two"].append(await two.receive_json_from(timeout=TIMEOUT))
        await two.send_json_to({"type": "stop"})
        frames["two"] += await until_done(two)
        frames["one"] = await until_done(one)
        await close(one, conversation)
        await two.disconnect()

    run(scenario)
    reply, generation = _answer(conversation)
    assert frames["one"][-1]["status"] == frames["two"][-1]["status"] == "stopped"
    assert reply.status == Message.Status.STOPPED
    assert 0 < len(reply.content.split()) < WORDS
    assert generation.outcome == Generation.Outcome.STOPPED
    _assert_settled_once(conversation, reply, generation)


def test_stop_reaches_the_answer_through_the_channel_layer(
    alpha: Team, mock_model: AIModel, conversation: Conversation, client_for: Callable[..., Any]
) -> None:
    """A socket in another process has no local reference to the run: its stop is the
    `chat.stop` message to the conversation's answer group, which the run listens to."""
    set_options(mock_model, latency_ms=30, reply=REPLY)
    headers = headers_for(client_for, alpha.member)
    frames: list[dict[str, Any]] = []

    async def scenario() -> None:
        one = await open_socket(conversation, headers)
        await one.send_json_to({"type": "send", "content": "go"})
        frames.append(await one.receive_json_from(timeout=TIMEOUT))
        frames.append(await one.receive_json_from(timeout=TIMEOUT))
        layer = answers.get_channel_layer()
        assert layer is not None
        await layer.group_send(answers.answer_group(conversation.pk), {"type": "chat.stop"})
        frames.extend(await until_done(one))
        await close(one, conversation)

    run(scenario)
    reply, generation = _answer(conversation)
    assert frames[-1]["status"] == "stopped"
    assert generation.outcome == Generation.Outcome.STOPPED
    assert 0 < len(reply.content.split()) < WORDS
    _assert_settled_once(conversation, reply, generation)


def test_an_abandoned_answer_ends_at_the_time_limit(
    alpha: Team, mock_model: AIModel, conversation: Conversation, client_for: Callable[..., Any], settings: Any
) -> None:
    settings.CHAT_MAX_ANSWER_SECONDS = 0.4
    set_options(mock_model, latency_ms=50, reply=REPLY)  # would take ~2 s
    headers = headers_for(client_for, alpha.member)

    async def scenario() -> None:
        one = await open_socket(conversation, headers)
        await one.send_json_to({"type": "send", "content": "go"})
        assert (await one.receive_json_from(timeout=TIMEOUT))["type"] == "started"
        await one.disconnect()
        await until_idle(conversation)

    run(scenario)
    reply, generation = _answer(conversation)
    assert reply.status == Message.Status.STOPPED
    assert reply.error == answers.TIME_LIMIT_MESSAGE
    assert 0 < len(reply.content.split()) < WORDS
    assert generation.outcome == Generation.Outcome.STOPPED
    _assert_settled_once(conversation, reply, generation)


def test_access_ended_stops_an_answer_with_no_socket_open(
    alpha: Team, mock_model: AIModel, conversation: Conversation, client_for: Callable[..., Any]
) -> None:
    set_options(mock_model, latency_ms=40, reply=REPLY)
    headers = headers_for(client_for, alpha.member)

    async def scenario() -> None:
        one = await open_socket(conversation, headers)
        await one.send_json_to({"type": "send", "content": "go"})
        for _ in range(3):
            await one.receive_json_from(timeout=TIMEOUT)
        await one.disconnect()
        await database_sync_to_async(user_suspend)(user=alpha.member, reason="abuse", acting_user=alpha.owner)
        await until_idle(conversation)

    run(scenario)
    reply, generation = _answer(conversation)
    assert reply.status == Message.Status.STOPPED
    assert reply.error == services.ACCESS_ENDED_MESSAGE
    assert 0 < len(reply.content.split()) < WORDS
    _assert_settled_once(conversation, reply, generation)


def test_a_page_showing_an_answer_that_ended_meanwhile_gets_its_final_state(
    alpha: Team, conversation: Conversation, client_for: Callable[..., Any]
) -> None:
    """The page was rendered while the answer streamed and connects after it ended: it names the
    message it shows as streaming, and gets the finished one."""
    headers = headers_for(client_for, alpha.member)
    frames: list[dict[str, Any]] = []

    async def scenario() -> None:
        one = await open_socket(conversation, headers)
        await one.send_json_to({"type": "send", "content": "hello **there**"})
        await until_done(one)
        await close(one, conversation)
        reply = await database_sync_to_async(Message.objects.get)(conversation=conversation, role="assistant")
        path = f"/ws/chat/{conversation.pk}/?streaming={reply.pk}"
        from aikeedo.asgi import application

        two = WebsocketCommunicator(application, path, headers=headers)
        assert (await two.connect())[0]
        frames.append(await two.receive_json_from(timeout=TIMEOUT))
        frames.append(await two.receive_json_from(timeout=TIMEOUT))
        await two.disconnect()

    run(scenario)
    reply = Message.objects.get(conversation=conversation, role="assistant")
    assert frames[0]["type"] == "ready"
    assert (frames[1]["type"], frames[1]["message_id"], frames[1]["status"]) == ("done", reply.pk, "complete")
    assert "<strong>there</strong>" in frames[1]["html"]


def test_a_reconnecting_page_gets_every_message_again(
    alpha: Team, conversation: Conversation, client_for: Callable[..., Any]
) -> None:
    headers = headers_for(client_for, alpha.member)
    frames: list[dict[str, Any]] = []

    async def scenario() -> None:
        one = await open_socket(conversation, headers)
        await one.send_json_to({"type": "send", "content": "remember me"})
        await until_done(one)
        await close(one, conversation)
        from aikeedo.asgi import application

        two = WebsocketCommunicator(application, f"/ws/chat/{conversation.pk}/?history=1", headers=headers)
        assert (await two.connect())[0]
        frames.append(await two.receive_json_from(timeout=TIMEOUT))
        frames.append(await two.receive_json_from(timeout=TIMEOUT))
        await two.disconnect()

    run(scenario)
    assert [f["type"] for f in frames] == ["ready", "history"]
    ids = [m.pk for m in Message.objects.filter(conversation=conversation)]
    assert len(ids) == 2
    for pk in ids:
        assert f'data-message-id="{pk}"' in frames[1]["html"]
    assert "remember me" in frames[1]["html"]


# ---------------------------------------------------------------------------- through Redis
#
# channels_redis reads every process-local channel of one prefix from one Redis list, through
# one receive() of the process at a time. The run's channel once had a prefix of its own: while
# a socket's receive held the lock, the run never got its stop or hello; while the run's held
# it, no socket of the process got a delta or the done frame until the answer ended (the page
# stayed "generating…"). The in-memory layer has a queue per channel and cannot show this.

LIVE_WORDS = 60
LIVE_REPLY = " ".join(f"w{i}" for i in range(LIVE_WORDS))
LIVE_GAP_SECONDS = 0.75  # the longest silence a socket may see while the model writes every 40-50 ms
STOP_WITHIN_SECONDS = 1.0


@pytest.fixture
def redis_layer(settings: Any) -> None:
    if not settings.REDIS_URL:
        pytest.skip("needs REDIS_URL: the in-memory channel layer has a queue per channel")
    assert settings.CHANNEL_LAYERS["default"]["BACKEND"] == "channels_redis.core.RedisChannelLayer"


async def _timed_until_done(communicator: WebsocketCommunicator) -> list[tuple[float, dict[str, Any]]]:
    loop = asyncio.get_running_loop()
    frames: list[tuple[float, dict[str, Any]]] = []
    while not frames or frames[-1][1]["type"] not in ("done", "error"):
        frame = await communicator.receive_json_from(timeout=TIMEOUT)
        frames.append((loop.time(), frame))
    return frames


def _longest_gap(timed: list[tuple[float, dict[str, Any]]]) -> float:
    times = [at for at, _ in timed]
    return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


def test_through_redis_every_socket_follows_the_answer_live_and_gets_its_done(
    redis_layer: None,
    alpha: Team,
    mock_model: AIModel,
    conversation: Conversation,
    client_for: Callable[..., Any],
) -> None:
    """Two sockets open before the answer, a third joins mid-answer (its hello must reach the
    run): each sees the text grow while the model writes, and each gets the done frame."""
    set_options(mock_model, latency_ms=40, reply=LIVE_REPLY)  # ~2.4 s
    users = (alpha.member, alpha.owner, alpha.member)
    headers = [headers_for(client_for, user) for user in users]
    timed: dict[str, list[tuple[float, dict[str, Any]]]] = {}

    async def scenario() -> None:
        one = await open_socket(conversation, headers[0])
        two = await open_socket(conversation, headers[1])
        await one.send_json_to({"type": "send", "content": "go"})
        following = asyncio.gather(_timed_until_done(one), _timed_until_done(two))
        await asyncio.sleep(0.8)
        three = await open_socket(conversation, headers[2])
        timed["three"] = await _timed_until_done(three)
        timed["one"], timed["two"] = await following
        await close(one, conversation)
        await two.disconnect()
        await three.disconnect()

    run(scenario)
    reply, generation = _answer(conversation)
    assert reply.content == LIVE_REPLY
    assert 0 < timed["three"][0][1]["offset"] < len(LIVE_REPLY)  # joined mid-answer, got a snapshot
    for name, frames in timed.items():
        plain = [frame for _, frame in frames]
        assert plain[-1]["type"] == "done", name
        assert plain[-1]["status"] == "complete", name
        assert _followed(plain) == LIVE_REPLY, name
        assert sum(frame["type"] == "delta" for frame in plain) >= 5, name
        assert _longest_gap(frames) < LIVE_GAP_SECONDS, (name, _longest_gap(frames))
    assert len({frames[-1][1]["html"] for frames in timed.values()}) == 1
    _assert_settled_once(conversation, reply, generation)


def test_through_redis_a_stop_from_a_second_socket_ends_the_answer_for_every_socket(
    redis_layer: None,
    alpha: Team,
    mock_model: AIModel,
    conversation: Conversation,
    client_for: Callable[..., Any],
) -> None:
    set_options(mock_model, latency_ms=50, reply=LIVE_REPLY)  # ~3 s
    first, second = headers_for(client_for, alpha.member), headers_for(client_for, alpha.member)
    frames: dict[str, list[tuple[float, dict[str, Any]]]] = {}
    stopped_at: list[float] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        one = await open_socket(conversation, first)
        await one.send_json_to({"type": "send", "content": "go"})
        following = asyncio.ensure_future(_timed_until_done(one))
        await asyncio.sleep(0.5)
        two = await open_socket(conversation, second)
        started = await two.receive_json_from(timeout=TIMEOUT)
        assert started["type"] == "started"
        assert started["offset"] > 0  # the snapshot
        stopped_at.append(loop.time())
        await two.send_json_to({"type": "stop"})
        frames["two"] = await _timed_until_done(two)
        frames["one"] = await following
        await close(one, conversation)
        await two.disconnect()

    run(scenario)
    reply, generation = _answer(conversation)
    for name in ("one", "two"):
        done_at, done = frames[name][-1]
        assert done["type"] == "done", name
        assert done["status"] == "stopped", name
        assert done_at - stopped_at[0] < STOP_WITHIN_SECONDS, name
    assert reply.status == Message.Status.STOPPED
    assert 0 < len(reply.content.split()) < LIVE_WORDS
    assert generation.outcome == Generation.Outcome.STOPPED
    _assert_settled_once(conversation, reply, generation)


def test_through_redis_a_stop_from_another_process_reaches_the_answer(
    redis_layer: None,
    alpha: Team,
    mock_model: AIModel,
    conversation: Conversation,
    client_for: Callable[..., Any],
) -> None:
    """A socket served by another process stops the answer through the answer group only: a
    second layer instance (its own process-local prefix, its own connections) sends it."""
    set_options(mock_model, latency_ms=50, reply=LIVE_REPLY)
    headers = headers_for(client_for, alpha.member)
    frames: list[tuple[float, dict[str, Any]]] = []
    stopped_at: list[float] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        one = await open_socket(conversation, headers)
        await one.send_json_to({"type": "send", "content": "go"})
        following = asyncio.ensure_future(_timed_until_done(one))
        await asyncio.sleep(0.5)
        other_process = channel_layers.make_backend(DEFAULT_CHANNEL_LAYER)
        try:
            stopped_at.append(loop.time())
            await other_process.group_send(answers.answer_group(conversation.pk), {"type": "chat.stop"})
        finally:
            await other_process.close_pools()
        frames.extend(await following)
        await close(one, conversation)

    run(scenario)
    reply, generation = _answer(conversation)
    done_at, done = frames[-1]
    assert done["type"] == "done"
    assert done["status"] == "stopped"
    assert done_at - stopped_at[0] < STOP_WITHIN_SECONDS
    assert _longest_gap(frames) < LIVE_GAP_SECONDS
    assert generation.outcome == Generation.Outcome.STOPPED
    assert 0 < len(reply.content.split()) < LIVE_WORDS
    _assert_settled_once(conversation, reply, generation)
