"""The charging pipeline end to end: mock provider (and the fake upstream through litellm), the
real credits ledger, the usage log."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection

from apps.credits.exceptions import InsufficientCredits
from apps.credits.models import Reservation
from apps.credits.rates import credits_quote, rate_card_publish, rate_cards_seed_defaults
from apps.credits.services import credits_checkpoint, credits_reserve, credits_sweep
from apps.generation.breaker import CircuitBreaker
from apps.generation.models import AIModel, Generation, ModelFallback, Provider
from apps.generation.providers.base import ProviderKind, TextDelta
from apps.generation.router import AllProvidersFailed
from apps.generation.services import CHECKPOINT_EVERY, GenerationRefused, generation_chat_stream
from apps.generation.tokens import count_message_tokens, count_tokens
from apps.workspaces.models import Workspace
from tests.factories import UserFactory, WorkspaceFactory
from tests.fakes.upstream import FakeUpstream
from tests.generation.charging import MESSAGES, REPLY_WORDS, account, expected_units, fund, run, second_model

pytestmark = pytest.mark.usefixtures("_ledger_stays_consistent")


def test_happy_path_charges_the_quoted_cost_of_reported_usage(workspace: Workspace, mock_model: AIModel) -> None:
    fund(workspace)
    user = UserFactory()
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
    stream = generation_chat_stream(
        workspace=workspace, user=None, model=mock_model, messages=MESSAGES, idempotency_key="b"
    )
    with pytest.raises(InsufficientCredits):
        next(stream)
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
        next(
            generation_chat_stream(
                workspace=workspace,
                user=None,
                model=mock_model,
                messages=MESSAGES,
                idempotency_key="p",
                plan_code="free",
            )
        )
    assert not Reservation.objects.exists()
    assert Generation.objects.get().outcome == Generation.Outcome.REFUSED


def test_falls_back_when_primary_fails_before_first_token(workspace: Workspace, mock_model: AIModel) -> None:
    fund(workspace)
    mock_model.provider.options = {"fail": "before:503"}
    mock_model.provider.save()
    backup = second_model()
    ModelFallback.objects.create(model=mock_model, fallback=backup, position=0)
    breaker = CircuitBreaker(failure_threshold=1)
    text, end = run(
        generation_chat_stream(
            workspace=workspace, user=None, model=mock_model, messages=MESSAGES, idempotency_key="c", breaker=breaker
        )
    )
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
    mock_model.provider.options = {"fail": "after:3"}
    mock_model.provider.save()
    before = account(workspace).balance_units
    text, end = run(
        generation_chat_stream(workspace=workspace, user=None, model=mock_model, messages=MESSAGES, idempotency_key="d")
    )
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
    stream = generation_chat_stream(
        workspace=workspace, user=None, model=mock_model, messages=MESSAGES, idempotency_key="e"
    )
    got = [next(stream), next(stream), next(stream)]
    stream.close(outcome)
    text = "".join(e.text for e in got if isinstance(e, TextDelta))
    assert text == "Echo: one two"
    units = expected_units("mock-chat", count_message_tokens("mock-chat", MESSAGES), count_tokens("mock-chat", text))
    assert units > 0
    assert before - account(workspace).balance_units == units
    assert account(workspace).held_units == 0
    row = Generation.objects.get()
    assert (row.outcome, row.credits_charged_units) == (outcome, units)


def test_closing_before_first_token_charges_nothing(workspace: Workspace, mock_model: AIModel) -> None:
    fund(workspace)
    stream = generation_chat_stream(
        workspace=workspace, user=None, model=mock_model, messages=MESSAGES, idempotency_key="f"
    )
    stream.close()
    assert not Reservation.objects.exists()
    assert account(workspace).balance_units == 10_000_000


def test_all_providers_down_releases_everything(workspace: Workspace, mock_model: AIModel) -> None:
    fund(workspace)
    mock_model.provider.options = {"fail": "before:500"}
    mock_model.provider.save()
    ModelFallback.objects.create(model=mock_model, fallback=second_model(fail="before:timeout"), position=0)
    stream = generation_chat_stream(
        workspace=workspace, user=None, model=mock_model, messages=MESSAGES, idempotency_key="g"
    )
    with pytest.raises(AllProvidersFailed):
        list(stream)
    assert account(workspace).balance_units == 10_000_000
    assert account(workspace).held_units == 0
    assert Reservation.objects.get().status == Reservation.Status.RELEASED
    row = Generation.objects.get()
    assert row.outcome == "error"
    assert row.credits_charged_units == 0
    assert len(row.attempts) == 2


def test_skips_disabled_fallbacks(workspace: Workspace, mock_model: AIModel) -> None:
    fund(workspace)
    mock_model.provider.options = {"fail": "before:500"}
    mock_model.provider.save()
    disabled = second_model("mock-off")
    disabled.enabled = False
    disabled.save()
    ModelFallback.objects.create(model=mock_model, fallback=disabled, position=0)
    ModelFallback.objects.create(model=mock_model, fallback=second_model("mock-on"), position=1)
    run(
        generation_chat_stream(workspace=workspace, user=None, model=mock_model, messages=MESSAGES, idempotency_key="h")
    )
    assert [a["model"] for a in Generation.objects.get().attempts] == ["mock-chat", "mock-on"]


def test_long_answer_checkpoints_and_crashed_generation_is_swept(workspace: Workspace, mock_model: AIModel) -> None:
    fund(workspace)
    words = " ".join(f"w{i}" for i in range(45))
    mock_model.provider.options = {"reply": words}
    mock_model.provider.save()
    stream = generation_chat_stream(
        workspace=workspace, user=None, model=mock_model, messages=MESSAGES, idempotency_key="i"
    )
    for _ in range(25):
        next(stream)
    # The worker dies here: the generator is never closed, the hold stays with its checkpoint.
    reservation = Reservation.objects.get()
    assert reservation.status == Reservation.Status.HELD
    # Charged within CHECKPOINT_EVERY tokens of the 25 delivered (one word per delta).
    assert 25 - CHECKPOINT_EVERY < stream.checkpointed_tokens <= 25
    checkpoint = expected_units("mock-chat", count_message_tokens("mock-chat", MESSAGES), stream.checkpointed_tokens)
    assert reservation.checkpoint_units == checkpoint > 0
    before = account(workspace).balance_units
    assert credits_sweep(older_than=timedelta(0)) == {"settled": 1, "released": 0}
    assert before - account(workspace).balance_units == checkpoint
    # A late close (the worker was only stuck) changes nothing: the sweep's outcome stands.
    stream.close(Generation.Outcome.CLIENT_GONE)
    assert before - account(workspace).balance_units == checkpoint
    assert Generation.objects.get().credits_charged_units == checkpoint


def test_reserve_and_checkpoint_then_sweep(workspace: Workspace) -> None:
    fund(workspace)
    reservation = credits_reserve(
        workspace=workspace, units=500, idempotency_key="crash", service="text", model="mock-chat"
    )
    credits_checkpoint(reservation=reservation, delivered_units=7)
    assert credits_sweep(older_than=timedelta(0))["settled"] == 1
    assert account(workspace).balance_units == 10_000_000 - 7


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
    text, end = run(
        generation_chat_stream(workspace=workspace, user=None, model=model, messages=MESSAGES, idempotency_key="j")
    )
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


@pytest.mark.django_db(transaction=True)
def test_concurrent_generations_never_overdraw(rates: None) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL row locks")
    # A transactional test before this one may have flushed the catalog the migrations seeded.
    from apps.generation.catalog import catalog_seed_defaults
    from apps.generation.models import ModelFallback, Provider

    catalog_seed_defaults(Provider, AIModel, ModelFallback)
    rate_cards_seed_defaults()
    workspace = WorkspaceFactory(name="Race")
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
            stream = generation_chat_stream(
                workspace=workspace, user=None, model=model, messages=MESSAGES, max_tokens=50, idempotency_key=f"r{i}"
            )
            run(stream)
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
