"""The charging pipeline end to end: mock provider (and the fake upstream through litellm), the
real credits ledger, the usage log. How each ending is charged: finished, refused, failed over,
broken mid-stream, stopped or cancelled before and after the first token, access lost, the
worker dead (checkpoints and the sweeps), and many streams competing for one balance.

Transactional: the database steps run in database threads (`db_step`): on other connections
(`DB_STEP_THREADS`), or through channels' `database_sync_to_async`, which closes a connection
found inside a transaction (as a test's rollback transaction would be)."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.db import connection

from apps.credits.exceptions import InsufficientCredits
from apps.credits.models import Reservation
from apps.credits.rates import credits_quote, rate_card_publish, rate_cards_seed_defaults
from apps.credits.services import credits_checkpoint, credits_reserve, credits_sweep
from apps.generation.breaker import CircuitBreaker
from apps.generation.exceptions import AccessRevoked, GenerationRefused
from apps.generation.models import AIModel, Generation, ModelFallback, Provider
from apps.generation.providers.base import ProviderKind, TextDelta
from apps.generation.router import AllProvidersFailed
from apps.generation.services import CHECKPOINT_EVERY, ChatGeneration, generation_chat_stream, generation_sweep
from apps.generation.tokens import count_message_tokens, count_tokens
from apps.workspaces.models import Workspace
from tests.factories import UserFactory, WorkspaceFactory
from tests.fakes.upstream import FakeUpstream
from tests.generation.charging import (
    MESSAGES,
    REPLY_WORDS,
    account,
    expected_units,
    fund,
    run,
    second_model,
    take,
)

pytestmark = [pytest.mark.usefixtures("_ledger_stays_consistent"), pytest.mark.django_db(transaction=True)]


def stream_for(workspace: Workspace, model: AIModel, key: str, **kwargs: Any) -> ChatGeneration:
    return generation_chat_stream(
        workspace=workspace, user=None, model=model, messages=MESSAGES, idempotency_key=key, **kwargs
    )


def set_options(model: AIModel, **options: Any) -> None:
    model.provider.options = {"latency_ms": 0, **options}
    model.provider.save()


def test_happy_path_charges_the_quoted_cost_of_reported_usage(workspace: Workspace, mock_model: AIModel) -> None:
    fund(workspace)
    user = UserFactory.create()
    before = account(workspace).balance_units
    text, end = run(
        generation_chat_stream(workspace=workspace, user=user, model=mock_model, messages=MESSAGES, idempotency_key="a")
    )
    assert text == "Echo: one two three four five six seven"
    input_tokens = count_message_tokens("mock-chat", MESSAGES)
    units = expected_units("mock-chat", input_tokens, REPLY_WORDS)
    assert end.outcome == Generation.Outcome.OK
    assert end.credits_units == units > 0
    assert before - account(workspace).balance_units == units
    assert account(workspace).held_units == 0
    row = Generation.objects.get(pk=end.generation_id)
    assert (row.outcome, row.input_tokens, row.output_tokens, row.credits_charged_units) == (
        "ok",
        input_tokens,
        REPLY_WORDS,
        units,
    )
    assert row.usage_reported
    assert row.user == user
    assert row.provider_kind == "mock"
    assert row.time_to_first_token_ms is not None
    assert row.total_ms is not None
    assert [a["outcome"] for a in row.attempts] == ["ok"]
    assert row.reservation is not None
    assert row.reservation.status == Reservation.Status.SETTLED


def test_refuses_without_credits_holds_nothing_and_logs_refusal(workspace: Workspace, mock_model: AIModel) -> None:
    fund(workspace, units=1)
    stream = stream_for(workspace, mock_model, "b")
    with pytest.raises(InsufficientCredits):
        async_to_sync(stream.__anext__)()
    assert account(workspace).held_units == 0
    assert account(workspace).balance_units == 1
    assert not Reservation.objects.exists()
    row = Generation.objects.get()
    assert row.outcome == Generation.Outcome.REFUSED
    assert "Not enough credits" in row.error


def test_refuses_model_outside_plan(workspace: Workspace, mock_model: AIModel) -> None:
    fund(workspace)
    mock_model.plans = ["pro"]
    mock_model.save()
    with pytest.raises(GenerationRefused):
        run(stream_for(workspace, mock_model, "p", plan_code="free"))
    assert not Reservation.objects.exists()
    assert Generation.objects.get().outcome == Generation.Outcome.REFUSED


def test_a_replayed_idempotency_key_is_refused_and_charges_nothing_more(
    workspace: Workspace, mock_model: AIModel
) -> None:
    fund(workspace)
    _, first = run(stream_for(workspace, mock_model, "once"))
    balance = account(workspace).balance_units
    with pytest.raises(GenerationRefused, match="already processed"):
        run(stream_for(workspace, mock_model, "once"))
    assert account(workspace).balance_units == balance
    assert account(workspace).held_units == 0
    assert Reservation.objects.get().charged_units == first.credits_units
    assert list(Generation.objects.order_by("id").values_list("outcome", flat=True)) == ["ok", "refused"]


def test_falls_back_when_primary_fails_before_first_token(workspace: Workspace, mock_model: AIModel) -> None:
    fund(workspace)
    set_options(mock_model, fail="before:503")
    backup = second_model()
    ModelFallback.objects.create(model=mock_model, fallback=backup, position=0)
    breaker = CircuitBreaker(failure_threshold=1)
    text, end = run(stream_for(workspace, mock_model, "c", breaker=breaker))
    assert text.startswith("Echo:")
    assert end.outcome == Generation.Outcome.OK
    row = Generation.objects.get()
    assert [a["outcome"] for a in row.attempts] == ["error", "ok"]
    assert row.upstream_model == "mock-backup"
    assert breaker.state(mock_model.target().breaker_key) == "open"  # the failure counted
    assert breaker.state(backup.target().breaker_key) == "closed"
    # Charged on the reservation's (primary's) rate card.
    assert end.credits_units == expected_units("mock-chat", end.usage.input_tokens, REPLY_WORDS)


def test_error_after_three_tokens_charges_delivered_tokens_only(workspace: Workspace, mock_model: AIModel) -> None:
    fund(workspace)
    set_options(mock_model, fail="after:3")
    before = account(workspace).balance_units
    text, end = run(stream_for(workspace, mock_model, "d"))
    assert text == "Echo: one two"
    assert end.outcome == Generation.Outcome.ERROR
    assert "broke after 3" in end.error
    input_tokens = count_message_tokens("mock-chat", MESSAGES)
    units = expected_units("mock-chat", input_tokens, count_tokens("mock-chat", text))
    assert end.credits_units == units > 0
    assert before - account(workspace).balance_units == units
    row = Generation.objects.get()
    assert row.outcome == "error"
    assert not row.usage_reported
    assert row.output_tokens == count_tokens("mock-chat", text)


@pytest.mark.parametrize("outcome", [Generation.Outcome.STOPPED, Generation.Outcome.CLIENT_GONE])
def test_closing_after_k_tokens_charges_k_tokens(workspace: Workspace, mock_model: AIModel, outcome: str) -> None:
    fund(workspace)
    before = account(workspace).balance_units
    stream = stream_for(workspace, mock_model, "e")

    async def scenario() -> list[str]:
        delivered = [(await stream.__anext__()) for _ in range(3)]
        await stream.aclose(outcome)
        return [event.text for event in delivered if isinstance(event, TextDelta)]

    text = "".join(async_to_sync(scenario)())
    assert text == "Echo: one two"
    output = count_tokens("mock-chat", text)
    units = expected_units("mock-chat", count_message_tokens("mock-chat", MESSAGES), output)
    assert units > 0
    assert before - account(workspace).balance_units == units
    assert account(workspace).held_units == 0
    row = Generation.objects.get()
    assert (row.outcome, row.output_tokens, row.credits_charged_units) == (outcome, output, units)


def test_closing_before_first_token_charges_nothing(workspace: Workspace, mock_model: AIModel) -> None:
    fund(workspace)
    stream = stream_for(workspace, mock_model, "f")
    async_to_sync(stream.aclose)()
    assert not Reservation.objects.exists()
    assert not Generation.objects.exists()
    assert account(workspace).balance_units == 10_000_000


def test_cancel_while_waiting_for_the_first_token_charges_nothing(workspace: Workspace, mock_model: AIModel) -> None:
    fund(workspace)
    set_options(mock_model, latency_ms=5000)
    stream = stream_for(workspace, mock_model, "b")

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


def test_cancel_mid_stream_charges_what_was_delivered(workspace: Workspace, mock_model: AIModel) -> None:
    fund(workspace)
    set_options(mock_model, latency_ms=50, reply=" ".join(f"w{i}" for i in range(30)))
    stream = stream_for(workspace, mock_model, "d")
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


@pytest.mark.parametrize("failure", [RuntimeError("a bug in the caller"), asyncio.CancelledError()])
def test_any_way_out_of_the_block_settles_what_was_delivered(
    workspace: Workspace, mock_model: AIModel, failure: BaseException
) -> None:
    """The caller fails between two deltas (a send error, a cancelled task): leaving the
    `async with` block ends the hold at once, charged for the deltas taken."""
    fund(workspace)
    set_options(mock_model, reply=" ".join(f"w{i}" for i in range(30)))
    taken: list[str] = []

    async def caller() -> None:
        stream = stream_for(workspace, mock_model, "cut")
        stream.close_outcome = Generation.Outcome.CLIENT_GONE
        async with stream:
            async for event in stream:
                assert isinstance(event, TextDelta)
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
    set_options(mock_model, latency_ms=5, reply=" ".join(f"w{i}" for i in range(200)))
    allowed = [True]
    taken: list[str] = []

    async def caller() -> None:
        stream = stream_for(workspace, mock_model, "lost", access_check=lambda: allowed[0])
        async with stream:
            async for event in stream:
                assert isinstance(event, TextDelta)
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


def test_all_providers_down_releases_everything(workspace: Workspace, mock_model: AIModel) -> None:
    fund(workspace)
    set_options(mock_model, fail="before:500")
    ModelFallback.objects.create(model=mock_model, fallback=second_model(fail="before:timeout"), position=0)
    with pytest.raises(AllProvidersFailed):
        run(stream_for(workspace, mock_model, "g"))
    assert account(workspace).balance_units == 10_000_000
    assert account(workspace).held_units == 0
    assert Reservation.objects.get().status == Reservation.Status.RELEASED
    row = Generation.objects.get()
    assert row.outcome == "error"
    assert row.credits_charged_units == 0
    assert len(row.attempts) == 2


def test_skips_disabled_fallbacks(workspace: Workspace, mock_model: AIModel) -> None:
    fund(workspace)
    set_options(mock_model, fail="before:500")
    disabled = second_model("mock-off")
    disabled.enabled = False
    disabled.save()
    ModelFallback.objects.create(model=mock_model, fallback=disabled, position=0)
    ModelFallback.objects.create(model=mock_model, fallback=second_model("mock-on"), position=1)
    run(stream_for(workspace, mock_model, "h"))
    assert [a["model"] for a in Generation.objects.get().attempts] == ["mock-chat", "mock-on"]


def test_uncharged_generation_holds_nothing_and_logs_zero(workspace: Workspace, mock_model: AIModel) -> None:
    fund(workspace)
    text, end = run(stream_for(workspace, mock_model, "f", charge=False))
    assert text.startswith("Echo:")
    assert end.credits_units == 0
    assert not Reservation.objects.exists()
    row = Generation.objects.get()
    assert (row.outcome, row.credits_charged_units, row.output_tokens) == ("ok", 0, REPLY_WORDS)


# ---------------------------------------------------------------------------- a worker that dies


def test_long_answer_checkpoints_and_a_crashed_generation_is_swept(workspace: Workspace, mock_model: AIModel) -> None:
    fund(workspace)
    set_options(mock_model, reply=" ".join(f"w{i}" for i in range(45)))
    stream = stream_for(workspace, mock_model, "i")

    def after_the_crash() -> None:
        row = Generation.objects.get()
        assert row.outcome == Generation.Outcome.PENDING
        reservation = Reservation.objects.get()
        assert row.reservation == reservation
        assert reservation.status == Reservation.Status.HELD
        # Charged within CHECKPOINT_EVERY tokens of the 25 delivered (one word per delta).
        assert 25 - CHECKPOINT_EVERY < stream.checkpointed_tokens <= 25
        checkpoint = expected_units(
            "mock-chat", count_message_tokens("mock-chat", MESSAGES), stream.checkpointed_tokens
        )
        assert reservation.checkpoint_units == checkpoint > 0
        # Until the reservation sweep ends the hold, the usage row stays pending.
        assert generation_sweep(older_than=timedelta(0)) == 0
        assert credits_sweep(older_than=timedelta(0)) == {"settled": 1, "released": 0}
        assert generation_sweep(older_than=timedelta(0)) == 1
        row.refresh_from_db()
        assert (row.outcome, row.credits_charged_units) == (Generation.Outcome.INTERRUPTED, checkpoint)
        assert 10_000_000 - account(workspace).balance_units == checkpoint
        assert generation_sweep(older_than=timedelta(0)) == 0  # once

    async def scenario() -> None:
        await take(stream, 25)
        # The worker dies here: the stream is never resumed, the hold stays with its checkpoint.
        await sync_to_async(after_the_crash)()
        # A late close (the worker was only stuck) changes nothing: the sweep's outcome stands.
        await stream.aclose(Generation.Outcome.CLIENT_GONE)

    async_to_sync(scenario)()
    reservation = Reservation.objects.get()
    assert 10_000_000 - account(workspace).balance_units == reservation.charged_units
    assert Generation.objects.get().credits_charged_units == reservation.charged_units > 0


def test_sweep_leaves_recent_pending_rows(workspace: Workspace, mock_model: AIModel) -> None:
    fund(workspace)
    stream = stream_for(workspace, mock_model, "h", charge=False)

    def sweeps() -> None:
        assert generation_sweep(older_than=timedelta(minutes=5)) == 0
        assert generation_sweep(older_than=timedelta(0)) == 1  # no hold to wait for

    async def scenario() -> None:
        await take(stream, 1)
        await sync_to_async(sweeps)()
        await stream.aclose()

    async_to_sync(scenario)()


@pytest.mark.django_db  # no stream runs: not transactional (the closest mark wins)
def test_reserve_and_checkpoint_then_sweep(workspace: Workspace) -> None:
    fund(workspace)
    reservation = credits_reserve(
        workspace=workspace, units=500, idempotency_key="crash", service="text", model="mock-chat"
    )
    credits_checkpoint(reservation=reservation, delivered_units=7)
    assert credits_sweep(older_than=timedelta(0))["settled"] == 1
    assert account(workspace).balance_units == 10_000_000 - 7


# ---------------------------------------------------------------------------- real upstream, real races


def test_litellm_happy_path_through_fake_upstream(workspace: Workspace, upstream: FakeUpstream) -> None:
    fund(workspace)
    provider = Provider.objects.create(
        name="Fake", kind=ProviderKind.OPENAI_COMPATIBLE, base_url=upstream.base_url + "/v1", timeout_seconds=5
    )
    provider.set_api_key("sk-test")
    provider.save()
    model = AIModel.objects.create(
        model_id="fake-chat", display_name="Fake", provider=provider, upstream_model="fake-cached:2"
    )
    rate_card_publish(
        service="text",
        model="fake-chat",
        acting_user=None,
        input_per_1k="1",
        cached_input_per_1k="0.5",
        output_per_1k="2",
    )
    text, end = run(stream_for(workspace, model, "j"))
    assert text == "Echo: one two three four five six seven"
    assert end.usage.reported
    assert end.usage.cached_input_tokens == 2
    assert end.credits_units == expected_units("fake-chat", end.usage.input_tokens, end.usage.output_tokens, cached=2)
    row = Generation.objects.get()
    assert row.outcome == "ok"
    assert row.cached_input_tokens == 2
    assert not row.cached  # provider prompt caching, not a response-cache hit
    assert row.provider_cost is None  # compatible endpoint: unknown price
    assert upstream.requests[0]["body"]["stream_options"] == {"include_usage": True}


def test_concurrent_generations_never_overdraw(rates: None) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL row locks")
    # A transactional test before this one may have flushed the catalog the migrations seeded.
    from apps.generation.catalog import catalog_seed_defaults

    catalog_seed_defaults(Provider, AIModel, ModelFallback)
    rate_cards_seed_defaults()
    workspace = WorkspaceFactory.create(name="Race")
    model = AIModel.objects.select_related("provider").get(model_id="mock-chat")
    model.provider.options = {"latency_ms": 20}
    model.provider.save()
    hold = credits_quote(
        service="text", model="mock-chat", input_tokens=count_message_tokens("mock-chat", MESSAGES), output_tokens=50
    ).units
    fund(workspace, units=hold * 3 + hold // 2)
    barrier = threading.Barrier(10)
    results: list[str] = []

    def worker(i: int) -> None:
        try:
            barrier.wait()
            run(stream_for(workspace, model, f"r{i}", max_tokens=50))
            results.append("ok")
        except InsufficientCredits:
            results.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 10
    assert results.count("ok") >= 3
    acc = account(workspace)
    assert acc.balance_units >= 0
    assert acc.held_units == 0
    assert "refused" in results  # the holds really competed for the balance
    assert Generation.objects.filter(outcome="ok").count() == results.count("ok")
    charged = sum(Generation.objects.values_list("credits_charged_units", flat=True))
    assert acc.balance_units == hold * 3 + hold // 2 - charged
