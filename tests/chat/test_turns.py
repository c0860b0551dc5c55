"""Chat turns (`apps.chat.services`) on the mock provider and the real credits ledger.

The turns are answered by `chat_turn_answer` on an event loop, driven from these sync tests as a
thread would (`async_to_sync`); transactional, as the pipeline's tests are (see test_pipeline)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from constance.test.pytest import override_config
from django.utils import timezone

from apps.accounts.models import User
from apps.chat import services
from apps.chat.exceptions import ChatStreamError
from apps.chat.models import Conversation, Message
from apps.chat.tasks import sweep_interrupted
from apps.credits.amounts import to_credits
from apps.credits.models import CreditAccount, Reservation
from apps.credits.rates import credits_quote, rate_cards_seed_defaults
from apps.credits.services import credits_grant, credits_sweep
from apps.generation.models import AIModel, Generation
from apps.generation.services import generation_chat_stream, generation_sweep
from apps.generation.tokens import count_message_tokens, count_tokens
from apps.workspaces.models import Workspace
from tests.credits.helpers import assert_ledger_consistent
from tests.factories import MembershipFactory, UserFactory, WorkspaceFactory
from tests.generation.charging import take

pytestmark = pytest.mark.django_db(transaction=True)

FUNDS = 10_000_000
OnDelta = Callable[[str], Awaitable[None]]


@pytest.fixture
def workspace(db: Any) -> Workspace:
    rate_cards_seed_defaults()
    return WorkspaceFactory.create(name="Chat")


@pytest.fixture
def user(workspace: Workspace) -> User:
    user = UserFactory.create()
    MembershipFactory.create(workspace=workspace, user=user)
    return user


@pytest.fixture
def model(mock_model: AIModel) -> AIModel:
    return mock_model


@pytest.fixture
def conversation(workspace: Workspace, user: User, model: AIModel) -> Conversation:
    return Conversation.objects.create(workspace=workspace, user=user, model=model, system_prompt="Be brief.")


@pytest.fixture(autouse=True)
def _ledger_stays_consistent(db: Any) -> Iterator[None]:
    yield
    assert_ledger_consistent()


def fund(workspace: Workspace, units: int = FUNDS) -> None:
    credits_grant(workspace=workspace, amount=to_credits(units), source="purchased", idempotency_key="fund")


def balance(workspace: Workspace) -> int:
    return CreditAccount.objects.get(workspace=workspace).balance_units


def set_options(model: AIModel, **options: Any) -> None:
    model.provider.options = {"latency_ms": 0, **options}
    model.provider.save()


def units_for(messages: list[dict[str, Any]], output_tokens: int) -> int:
    input_tokens = count_message_tokens("mock-chat", messages)
    quote = credits_quote(service="text", model="mock-chat", input_tokens=input_tokens, output_tokens=output_tokens)
    return quote.units


def collect(seen: list[str]) -> OnDelta:
    async def on_delta(text: str) -> None:
        seen.append(text)

    return on_delta


def answer(turn: services.Turn, on_delta: OnDelta | None = None) -> Message:
    return async_to_sync(services.chat_turn_answer)(turn, on_delta=on_delta)


def send(conversation: Conversation, user: User, content: str, on_delta: OnDelta | None = None) -> Message:
    """Add the user's message and answer it; the finished assistant message."""
    return answer(services.chat_send_prepare(conversation=conversation, user=user, content=content), on_delta)


def regenerate(conversation: Conversation, user: User) -> Message:
    return answer(services.chat_regenerate_prepare(conversation=conversation, user=user))


def edit_resend(conversation: Conversation, user: User, message_id: int, content: str) -> Message:
    turn = services.chat_edit_prepare(conversation=conversation, user=user, message_id=message_id, content=content)
    return answer(turn)


def write_title(turn: services.Turn, message: Message) -> str | None:
    return async_to_sync(services.chat_turn_title)(turn, message)


def test_send_persists_both_messages_with_usage_and_charge(
    workspace: Workspace, user: User, conversation: Conversation
) -> None:
    fund(workspace)
    seen: list[str] = []
    returned = send(conversation, user, "one two three", collect(seen))

    question, reply = Message.objects.filter(conversation=conversation).order_by("id")
    assert (question.role, question.content, question.status) == ("user", "one two three", "complete")
    assert reply.pk == returned.pk
    assert (reply.role, reply.status, reply.content, reply.model_label) == (
        "assistant",
        "complete",
        "Echo: one two three",
        "mock-chat",
    )
    assert "".join(seen) == reply.content
    assert len(seen) == 4
    sent = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "one two three"}]
    assert reply.input_tokens == count_message_tokens("mock-chat", sent)
    assert reply.output_tokens == 4
    assert reply.credits_units == units_for(sent, 4) > 0
    assert FUNDS - balance(workspace) == reply.credits_units
    assert reply.generation is not None
    assert reply.generation.outcome == Generation.Outcome.OK
    assert Reservation.objects.get().idempotency_key.endswith(f"chat:{reply.pk}")
    conversation.refresh_from_db()
    assert conversation.updated_at >= reply.created_at


def test_auto_title_from_first_message_only(workspace: Workspace, user: User, conversation: Conversation) -> None:
    fund(workspace)
    send(conversation, user, "please explain how a rainbow forms in the sky today")
    conversation.refresh_from_db()
    assert conversation.title == "please explain how a rainbow forms in the…"
    assert conversation.title_generated
    send(conversation, user, "and the moon")
    conversation.refresh_from_db()
    assert conversation.title == "please explain how a rainbow forms in the…"


def test_history_is_sent_to_the_model(
    workspace: Workspace, user: User, conversation: Conversation, monkeypatch: pytest.MonkeyPatch
) -> None:
    fund(workspace)
    send(conversation, user, "first question")
    calls: list[list[dict[str, Any]]] = []
    real = services.generation_chat_stream

    def spy(**kwargs: Any) -> Any:
        calls.append(kwargs["messages"])
        assert kwargs["idempotency_key"].startswith("chat:")
        return real(**kwargs)

    monkeypatch.setattr(services, "generation_chat_stream", spy)
    send(conversation, user, "second question")
    assert calls == [
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "Echo: first question"},
            {"role": "user", "content": "second question"},
        ]
    ]


def test_default_model_when_conversation_has_none(workspace: Workspace, user: User, model: AIModel) -> None:
    fund(workspace)
    conversation = Conversation.objects.create(workspace=workspace, user=user)
    reply = send(conversation, user, "hi")
    assert (reply.status, reply.model_label) == ("complete", "mock-chat")


def test_stop_after_k_deltas_charges_k_tokens(
    workspace: Workspace, user: User, conversation: Conversation, model: AIModel
) -> None:
    fund(workspace)
    turn = services.chat_send_prepare(conversation=conversation, user=user, content="one two three four five six")
    seen: list[str] = []

    async def on_delta(text: str) -> None:
        seen.append(text)
        if len(seen) == 3:  # the stop button, as the consumer handles it
            turn.request_stop(Generation.Outcome.STOPPED)
            assert turn.streaming
            current = asyncio.current_task()
            assert current is not None
            current.cancel()

    reply = answer(turn, on_delta)
    assert (reply.status, reply.content) == ("stopped", "Echo: one two")
    reply.refresh_from_db()
    assert (reply.status, reply.content) == ("stopped", "Echo: one two")
    assert len(seen) == 3
    assert reply.output_tokens == count_tokens("mock-chat", "Echo: one two")
    sent = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "one two three four five six"}]
    assert reply.credits_units == units_for(sent, count_tokens("mock-chat", "Echo: one two")) > 0
    assert FUNDS - balance(workspace) == reply.credits_units
    assert Generation.objects.get().outcome == Generation.Outcome.STOPPED


def test_client_gone_ends_as_client_gone(workspace: Workspace, user: User, conversation: Conversation) -> None:
    fund(workspace)
    seen: list[str] = []

    async def on_delta(text: str) -> None:
        if len(seen) == 2:  # the socket closed: the third delta cannot be relayed
            raise services.RelayFailed("the socket is closed")
        seen.append(text)

    reply = send(conversation, user, "one two three four", on_delta)
    assert (reply.status, reply.content) == ("stopped", "Echo: one")
    assert Generation.objects.get().outcome == Generation.Outcome.CLIENT_GONE
    assert FUNDS - balance(workspace) == reply.credits_units > 0


def test_insufficient_credits_marks_error_and_charges_nothing(
    workspace: Workspace, user: User, conversation: Conversation
) -> None:
    fund(workspace, units=1)
    reply = send(conversation, user, "hello")
    reply.refresh_from_db()
    assert reply.status == "error"
    assert reply.content == ""
    assert "Not enough credits" in reply.error
    assert reply.credits_units == 0
    assert balance(workspace) == 1
    assert not Reservation.objects.exists()
    assert reply.generation is not None
    assert reply.generation.outcome == Generation.Outcome.REFUSED
    # The question stays; the failed answer is not sent as history next time.
    assert Message.objects.filter(conversation=conversation, role="user").count() == 1


def test_disabled_model_is_refused(
    workspace: Workspace, user: User, conversation: Conversation, model: AIModel
) -> None:
    fund(workspace)
    model.enabled = False
    model.save()
    reply = send(conversation, user, "hello")
    assert reply.status == "error"
    assert "not available" in reply.error
    assert balance(workspace) == FUNDS


def test_provider_down_before_first_token_shows_generic_message(
    workspace: Workspace, user: User, conversation: Conversation, model: AIModel
) -> None:
    fund(workspace)
    set_options(model, fail="before:503")
    reply = send(conversation, user, "hello")
    assert reply.status == "error"
    assert reply.error == services.PROVIDERS_DOWN_MESSAGE
    assert "503" not in reply.error
    assert balance(workspace) == FUNDS


def test_provider_error_mid_stream_keeps_and_charges_delivered_part(
    workspace: Workspace, user: User, conversation: Conversation, model: AIModel
) -> None:
    fund(workspace)
    set_options(model, fail="after:3")
    reply = send(conversation, user, "one two three four five")
    reply.refresh_from_db()
    assert (reply.status, reply.content) == ("error", "Echo: one two")
    assert reply.error == services.MID_STREAM_MESSAGE
    assert "broke" not in reply.error
    assert reply.output_tokens == count_tokens("mock-chat", "Echo: one two")
    assert FUNDS - balance(workspace) == reply.credits_units > 0
    assert Generation.objects.get().outcome == Generation.Outcome.ERROR


def test_long_answer_is_persisted_while_streaming(
    workspace: Workspace, user: User, conversation: Conversation, model: AIModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    fund(workspace)
    set_options(model, reply=" ".join(f"w{i}" for i in range(90)))
    monkeypatch.setattr(services, "PERSIST_EVERY_SECONDS", 3600)
    snapshots: list[str] = []

    def saved() -> str:
        return Message.objects.filter(conversation=conversation, role="assistant").get().content

    async def on_delta(text: str) -> None:
        content = await sync_to_async(saved)()
        if len(snapshots) == 40:  # the save due at the 40th delta runs in the background
            for _ in range(300):
                if content:
                    break
                await asyncio.sleep(0.01)
                content = await sync_to_async(saved)()
        snapshots.append(content)

    reply = send(conversation, user, "go", on_delta)
    assert reply.status == "complete"
    assert snapshots[:40] == [""] * 40  # nothing saved per token
    words = [f"w{i}" for i in range(90)]
    assert snapshots[40].split() in (words[:40], words[:41])  # saved after 40 deltas
    assert len(set(snapshots)) <= 3  # "", then one save per 40 deltas


def test_regenerate_replaces_the_last_answer(workspace: Workspace, user: User, conversation: Conversation) -> None:
    fund(workspace)
    send(conversation, user, "first")
    old = send(conversation, user, "second")
    new = regenerate(conversation, user)
    assert not Message.objects.filter(pk=old.pk).exists()
    assert [(m.role, m.content) for m in Message.objects.filter(conversation=conversation)] == [
        ("user", "first"),
        ("assistant", "Echo: first"),
        ("user", "second"),
        ("assistant", "Echo: second"),
    ]
    assert new.status == "complete"
    assert Generation.objects.filter(outcome="ok").count() == 3


@pytest.mark.django_db  # refused before any stream: not transactional
def test_regenerate_without_messages_is_refused(user: User, conversation: Conversation) -> None:
    with pytest.raises(ChatStreamError):
        regenerate(conversation, user)


def test_edit_resend_drops_later_turns(workspace: Workspace, user: User, conversation: Conversation) -> None:
    fund(workspace)
    send(conversation, user, "first")
    send(conversation, user, "second")
    first = Message.objects.filter(conversation=conversation, role="user").order_by("id")[0]
    reply = edit_resend(conversation, user, first.pk, "changed mind")
    assert [(m.role, m.content) for m in Message.objects.filter(conversation=conversation)] == [
        ("user", "changed mind"),
        ("assistant", "Echo: changed mind"),
    ]
    assert reply.status == "complete"


def test_edit_resend_refuses_assistant_or_foreign_messages(
    workspace: Workspace, user: User, conversation: Conversation
) -> None:
    fund(workspace)
    reply = send(conversation, user, "first")
    other = Conversation.objects.create(workspace=workspace, user=user)
    foreign = Message.objects.create(workspace=workspace, conversation=other, role="user", content="x")
    for message_id in (reply.pk, foreign.pk):
        with pytest.raises(ChatStreamError):
            edit_resend(conversation, user, message_id, "y")


@pytest.mark.django_db  # refused before any stream: not transactional
@pytest.mark.parametrize("content", ["", "   ", "x" * (services.MAX_CONTENT_CHARS + 1)])
def test_invalid_content_is_refused(user: User, conversation: Conversation, content: str) -> None:
    with pytest.raises(ChatStreamError):
        send(conversation, user, content)
    assert not Message.objects.exists()


# ---------------------------------------------------------------------------- one turn at a time


def test_a_second_turn_is_refused_while_one_is_in_progress(
    workspace: Workspace, user: User, conversation: Conversation
) -> None:
    fund(workspace)
    turn = services.chat_send_prepare(conversation=conversation, user=user, content="first")
    with pytest.raises(ChatStreamError, match="already being generated"):
        send(conversation, user, "second tab")
    with pytest.raises(ChatStreamError, match="already being generated"):
        regenerate(conversation, user)
    assert Message.objects.filter(conversation=conversation, role="user").count() == 1
    assert answer(turn).status == "complete"
    assert send(conversation, user, "now it may").status == "complete"


@pytest.mark.django_db  # refused before any stream: not transactional
def test_a_refused_preparation_frees_the_conversation(user: User, conversation: Conversation) -> None:
    with pytest.raises(ChatStreamError):
        regenerate(conversation, user)  # nothing to answer
    conversation.refresh_from_db()
    assert conversation.turn_started_at is None


def test_a_lock_left_by_a_dead_worker_lapses(workspace: Workspace, user: User, conversation: Conversation) -> None:
    fund(workspace)
    stale = timezone.now() - timedelta(seconds=services.TURN_LOCK_SECONDS + 1)
    Conversation.objects.filter(pk=conversation.pk).update(turn_started_at=stale)
    assert send(conversation, user, "hello").status == "complete"


def test_interrupted_answers_are_swept_with_their_charge(
    workspace: Workspace, user: User, conversation: Conversation, model: AIModel
) -> None:
    fund(workspace)
    set_options(model, reply=" ".join(f"w{i}" for i in range(45)))
    turn = services.chat_send_prepare(conversation=conversation, user=user, content="go")
    stream = generation_chat_stream(**services._stream_kwargs(turn))

    def after_the_crash() -> None:
        assert services.chat_sweep_interrupted(older_than=timedelta(minutes=5)) == 0
        credits_sweep(older_than=timedelta(0))
        # Its usage row is still pending: the answer waits for the engine's sweep to close it.
        assert services.chat_sweep_interrupted(older_than=timedelta(0)) == 0
        generation_sweep(older_than=timedelta(0))
        assert services.chat_sweep_interrupted(older_than=timedelta(0)) == 1
        reply = Message.objects.get(pk=turn.assistant.pk)
        assert (reply.status, reply.error) == ("error", services.INTERRUPTED_MESSAGE)
        assert reply.generation is not None
        assert reply.credits_units == reply.generation.credits_charged_units > 0
        assert FUNDS - balance(workspace) == reply.credits_units
        conversation.refresh_from_db()
        assert conversation.turn_started_at is None

    async def scenario() -> None:
        await take(stream, 25)
        await sync_to_async(after_the_crash)()  # the worker died while streaming
        await stream.aclose()

    async_to_sync(scenario)()


@pytest.mark.django_db  # no stream runs: not transactional
def test_sweep_task_ends_answers_left_streaming(conversation: Conversation) -> None:
    """An answer whose worker died before the pipeline wrote its usage row has nothing to wait for."""
    stale = Message.objects.create(
        workspace=conversation.workspace,
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        status=Message.Status.STREAMING,
        created_at=timezone.now() - timedelta(hours=1),
    )
    assert sweep_interrupted() == {"messages": 1}
    stale.refresh_from_db()
    assert (stale.status, stale.error) == ("error", services.INTERRUPTED_MESSAGE)


# ---------------------------------------------------------------------------- titles


def test_title_is_written_by_the_model_after_the_first_exchange(
    workspace: Workspace, user: User, conversation: Conversation
) -> None:
    fund(workspace)
    reply = send(conversation, user, "rainbows and light")
    turn = services.Turn(conversation, user, reply, reply, conversation.model, [], first_exchange=True)
    turn.user_message = Message.objects.get(conversation=conversation, role="user")
    before = balance(workspace)
    title = write_title(turn, reply)
    assert title == "Echo: rainbows and light"  # the mock echoes the first message
    conversation.refresh_from_db()
    assert conversation.title == title
    assert balance(workspace) == before  # TITLE_CHARGED is off by default
    row = Generation.objects.filter(reservation__isnull=True).get()
    assert (row.outcome, row.credits_charged_units) == ("ok", 0)
    assert row.output_tokens > 0


@override_config(TITLE_CHARGED=True)
def test_title_is_charged_when_configured(workspace: Workspace, user: User, conversation: Conversation) -> None:
    fund(workspace)
    reply = send(conversation, user, "rainbows")
    turn = services.Turn(conversation, user, reply, reply, conversation.model, [], first_exchange=True)
    turn.user_message = Message.objects.get(conversation=conversation, role="user")
    before = balance(workspace)
    assert write_title(turn, reply)
    charged = before - balance(workspace)
    assert charged > 0
    assert Reservation.objects.get(idempotency_key__endswith=f"title:{reply.pk}").charged_units == charged


def test_title_model_from_the_admin_and_renames_win(
    workspace: Workspace, user: User, conversation: Conversation, model: AIModel
) -> None:
    fund(workspace)
    titler = AIModel.objects.create(
        model_id="titler", display_name="Titler", provider=model.provider, upstream_model="mock-chat"
    )
    rate_cards_seed_defaults()
    model.provider.options = {"latency_ms": 0}
    reply = send(conversation, user, "rainbows")
    turn = services.Turn(conversation, user, reply, reply, conversation.model, [], first_exchange=True)
    turn.user_message = Message.objects.get(conversation=conversation, role="user")
    with override_config(TITLE_MODEL="titler"):
        write_title(turn, reply)
    assert Generation.objects.filter(model=titler).count() == 1
    Conversation.objects.filter(pk=conversation.pk).update(title="Mine", title_generated=False)
    assert write_title(turn, reply) is None
    conversation.refresh_from_db()
    assert conversation.title == "Mine"


def test_no_title_after_a_failed_answer_or_a_later_exchange(
    workspace: Workspace, user: User, conversation: Conversation
) -> None:
    fund(workspace)
    reply = send(conversation, user, "rainbows")
    later = services.Turn(conversation, user, reply, reply, conversation.model, [], first_exchange=False)
    assert write_title(later, reply) is None
    reply.status = Message.Status.ERROR
    first = services.Turn(conversation, user, reply, reply, conversation.model, [], first_exchange=True)
    assert write_title(first, reply) is None
    assert Generation.objects.count() == 1


@pytest.mark.django_db  # no stream runs: not transactional
def test_model_title_is_cleaned_of_quotes_and_extra_lines() -> None:
    assert services._clean_model_title('"Rainbows explained"\nmore') == "Rainbows explained"
    assert services._clean_model_title("\n\n**Bold title**") == "Bold title"
    assert services._clean_model_title(" ".join(f"w{i}" for i in range(12))).endswith("…")
