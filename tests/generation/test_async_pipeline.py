"""The asyncio driver of the charging pipeline (used by the WebSocket consumer): same charges as
the thread driver, cancellation before and after the first token, and the pending usage row a
dead worker leaves behind."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import async_to_sync

from apps.credits.models import Reservation
from apps.credits.services import credits_sweep
from apps.generation.models import AIModel, Generation
from apps.generation.providers.base import TextDelta
from apps.generation.router import AllProvidersFailed
from apps.generation.services import (
    CHECKPOINT_EVERY,
    AccessRevoked,
    AsyncGenerationStream,
    generation_chat_astream,
    generation_chat_stream,
    generation_sweep,
)
from apps.generation.tokens import count_message_tokens, count_tokens
from apps.workspaces.models import Workspace
from tests.generation.charging import MESSAGES, REPLY_WORDS, account, arun, expected_units, fund

# Transactional: the database steps run through channels' `database_sync_to_async`, which
# closes a connection found inside a transaction (as a test's rollback transaction would be).
pytestmark = [pytest.mark.usefixtures("_ledger_stays_consistent"), pytest.mark.django_db(transaction=True)]


def astream(workspace: Workspace, model: AIModel, key: str, **kwargs: Any) -> AsyncGenerationStream:
    return generation_chat_astream(
        workspace=workspace, user=None, model=model, messages=MESSAGES, idempotency_key=key, **kwargs
    )


def slow(model: AIModel, **options: Any) -> None:
    model.provider.options = {"latency_ms": 0, **options}
    model.provider.save()


def test_happy_path_charges_like_the_thread_driver(workspace: Workspace, mock_model: AIModel) -> None:
    fund(workspace)
    text, end = async_to_sync(arun)(astream(workspace, mock_model, "a"))
    assert text == "Echo: one two three four five six seven"
    units = expected_units("mock-chat", count_message_tokens("mock-chat", MESSAGES), REPLY_WORDS)
    assert end.outcome == "ok"
    assert end.credits_units == units
    assert account(workspace).balance_units == 10_000_000 - units
    row = Generation.objects.get()
    assert (row.outcome, row.credits_charged_units, row.reservation.status) == ("ok", units, "settled")


def test_cancel_while_waiting_for_the_first_token_charges_nothing(workspace: Workspace, mock_model: AIModel) -> None:
    fund(workspace)
    slow(mock_model, latency_ms=5000)
    stream = astream(workspace, mock_model, "b")

    async def scenario() -> None:
        task = asyncio.ensure_future(stream.__anext__())
        for _ in range(500):  # until reserved and logged pending, then waiting upstream
            if stream.generation is not None or task.done():
                break
            await asyncio.sleep(0.01)
        assert not task.done()
        stream.close_outcome = Generation.Outcome.STOPPED
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    async_to_sync(scenario)()
    reservation = Reservation.objects.get()
    assert reservation.status == Reservation.Status.RELEASED
    assert account(workspace).balance_units == 10_000_000
    assert account(workspace).held_units == 0
    row = Generation.objects.get()
    assert (row.outcome, row.credits_charged_units, row.input_tokens) == ("stopped", 0, 0)


@pytest.mark.parametrize("outcome", [Generation.Outcome.STOPPED, Generation.Outcome.CLIENT_GONE])
def test_aclose_after_k_tokens_charges_k_tokens(workspace: Workspace, mock_model: AIModel, outcome: str) -> None:
    fund(workspace)
    stream = astream(workspace, mock_model, "c")

    delivered: list[str] = []

    async def scenario() -> None:
        for _ in range(3):
            event = await stream.__anext__()
            assert isinstance(event, TextDelta)
            delivered.append(event.text)
        await stream.aclose(outcome)

    async_to_sync(scenario)()
    output = count_tokens("mock-chat", "".join(delivered))
    units = expected_units("mock-chat", count_message_tokens("mock-chat", MESSAGES), output)
    row = Generation.objects.get()
    assert (row.outcome, row.output_tokens, row.credits_charged_units) == (outcome, output, units)
    assert account(workspace).balance_units == 10_000_000 - units


def test_cancel_mid_stream_charges_what_was_delivered(workspace: Workspace, mock_model: AIModel) -> None:
    fund(workspace)
    slow(mock_model, latency_ms=50, reply=" ".join(f"w{i}" for i in range(30)))
    stream = astream(workspace, mock_model, "d")
    seen: list[str] = []

    async def consume() -> None:
        async for event in stream:
            if isinstance(event, TextDelta):
                seen.append(event.text)

    async def scenario() -> None:
        task = asyncio.ensure_future(consume())
        for _ in range(500):
            if len(seen) >= 2 or task.done():
                break
            await asyncio.sleep(0.01)
        assert not task.done()
        stream.close_outcome = Generation.Outcome.CLIENT_GONE
        task.cancel()  # lands while the stream waits for the next token
        with pytest.raises(asyncio.CancelledError):
            await task

    async_to_sync(scenario)()
    row = Generation.objects.get()
    assert row.outcome == Generation.Outcome.CLIENT_GONE
    output = count_tokens("mock-chat", "".join(seen))
    assert row.output_tokens == output
    assert row.credits_charged_units == expected_units("mock-chat", count_message_tokens("mock-chat", MESSAGES), output)


def test_all_providers_down_raises_after_releasing(workspace: Workspace, mock_model: AIModel) -> None:
    fund(workspace)
    slow(mock_model, fail="before:503")
    with pytest.raises(AllProvidersFailed):
        async_to_sync(arun)(astream(workspace, mock_model, "e"))
    assert Reservation.objects.get().status == Reservation.Status.RELEASED
    assert Generation.objects.get().outcome == "error"
    assert account(workspace).balance_units == 10_000_000


def test_uncharged_generation_holds_nothing_and_logs_zero(workspace: Workspace, mock_model: AIModel) -> None:
    fund(workspace)
    text, end = async_to_sync(arun)(astream(workspace, mock_model, "f", charge=False))
    assert text.startswith("Echo:")
    assert end.credits_units == 0
    assert not Reservation.objects.exists()
    row = Generation.objects.get()
    assert (row.outcome, row.credits_charged_units, row.output_tokens) == ("ok", 0, REPLY_WORDS)


def test_usage_row_is_pending_while_streaming_and_swept_after_a_crash(
    workspace: Workspace, mock_model: AIModel
) -> None:
    fund(workspace)
    slow(mock_model, reply=" ".join(f"w{i}" for i in range(45)))
    stream = generation_chat_stream(
        workspace=workspace, user=None, model=mock_model, messages=MESSAGES, idempotency_key="g"
    )
    for _ in range(25):
        next(stream)
    row = Generation.objects.get()
    assert row.outcome == Generation.Outcome.PENDING
    assert row.reservation is not None
    # The worker dies here. Until the reservation sweep ends the hold, the row stays pending.
    assert generation_sweep(older_than=timedelta(0)) == 0
    assert credits_sweep(older_than=timedelta(0)) == {"settled": 1, "released": 0}
    assert generation_sweep(older_than=timedelta(0)) == 1
    row.refresh_from_db()
    # Charged within CHECKPOINT_EVERY tokens of the 25 delivered (one word per delta).
    assert 25 - CHECKPOINT_EVERY < stream.checkpointed_tokens <= 25
    checkpoint = expected_units("mock-chat", count_message_tokens("mock-chat", MESSAGES), stream.checkpointed_tokens)
    assert (row.outcome, row.credits_charged_units) == (Generation.Outcome.INTERRUPTED, checkpoint)
    assert 10_000_000 - account(workspace).balance_units == checkpoint
    assert generation_sweep(older_than=timedelta(0)) == 0  # once
    # A late close (the worker was only stuck) charges nothing more.
    stream.close(Generation.Outcome.CLIENT_GONE)
    assert 10_000_000 - account(workspace).balance_units == checkpoint


def test_sweep_leaves_recent_pending_rows(workspace: Workspace, mock_model: AIModel) -> None:
    fund(workspace)
    stream = generation_chat_stream(
        workspace=workspace, user=None, model=mock_model, messages=MESSAGES, idempotency_key="h", charge=False
    )
    next(stream)
    assert generation_sweep(older_than=timedelta(minutes=5)) == 0
    assert generation_sweep(older_than=timedelta(0)) == 1  # no hold to wait for
    stream.close()


@pytest.mark.parametrize("failure", [RuntimeError("a bug in the caller"), asyncio.CancelledError()])
def test_any_way_out_of_the_block_settles_what_was_delivered(
    workspace: Workspace, mock_model: AIModel, failure: BaseException
) -> None:
    """The caller fails between two deltas (a send error, a cancelled task): leaving the
    `async with` block ends the hold at once, charged for the deltas taken."""
    fund(workspace)
    slow(mock_model, reply=" ".join(f"w{i}" for i in range(30)))
    taken: list[str] = []

    async def caller() -> None:
        stream = astream(workspace, mock_model, "cut")
        stream.close_outcome = Generation.Outcome.CLIENT_GONE
        async with stream:
            async for event in stream:
                taken.append(event.text)
                if len(taken) == 3:
                    raise failure

    with pytest.raises(type(failure)):
        async_to_sync(caller)()
    reservation = Reservation.objects.get()
    assert reservation.status == Reservation.Status.SETTLED
    row = Generation.objects.get()
    assert row.outcome == Generation.Outcome.CLIENT_GONE
    assert row.output_tokens == count_tokens("mock-chat", "".join(taken))
    assert row.credits_charged_units == expected_units("mock-chat", row.input_tokens, row.output_tokens)
    assert account(workspace).held_units == 0
    assert 10_000_000 - account(workspace).balance_units == row.credits_charged_units


def test_access_lost_while_streaming_ends_the_stream_settled(
    workspace: Workspace, mock_model: AIModel, settings: Any
) -> None:
    settings.STREAM_ACCESS_RECHECK_SECONDS = 0
    fund(workspace)
    slow(mock_model, latency_ms=5, reply=" ".join(f"w{i}" for i in range(200)))
    allowed = [True]
    taken: list[str] = []

    async def caller() -> None:
        stream = astream(workspace, mock_model, "lost", access_check=lambda: allowed[0])
        async with stream:
            async for event in stream:
                taken.append(event.text)
                if len(taken) == 5:
                    allowed[0] = False

    with pytest.raises(AccessRevoked):
        async_to_sync(caller)()
    assert 5 <= len(taken) < 200
    row = Generation.objects.get()
    assert row.outcome == Generation.Outcome.STOPPED
    assert row.output_tokens == count_tokens("mock-chat", "".join(taken))
    assert Reservation.objects.get().status == Reservation.Status.SETTLED
    assert account(workspace).held_units == 0
