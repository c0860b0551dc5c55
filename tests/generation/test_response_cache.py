"""The response cache: opt-in per workspace or request, deterministic requests only, served from
the cache without calling the provider, charged at the configured cache rate, scoped per
workspace. Transactional where a stream runs (database threads: see test_pipeline)."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from constance.test.pytest import override_config

from apps.credits.rates import rate_card_publish
from apps.generation.models import AIModel, Generation, Provider
from apps.generation.providers.base import ProviderKind
from apps.generation.response_cache import cache_price
from apps.generation.services import GenerationEnd, generation_chat_stream
from apps.workspaces.models import Workspace
from tests.factories import WorkspaceFactory
from tests.fakes.upstream import FakeUpstream
from tests.generation.charging import MESSAGES, account, fund, run

pytestmark = [pytest.mark.usefixtures("_ledger_stays_consistent"), pytest.mark.django_db(transaction=True)]


@pytest.fixture
def fake_model(workspace: Workspace, upstream: FakeUpstream) -> AIModel:
    provider = Provider.objects.create(
        name="Fake", kind=ProviderKind.OPENAI_COMPATIBLE, base_url=upstream.base_url + "/v1", timeout_seconds=5
    )
    provider.set_api_key("sk-test")
    provider.save()
    rate_card_publish(service="text", model="fake-chat", acting_user=None, input_per_1k="1", output_per_1k="2")
    return AIModel.objects.create(
        model_id="fake-chat", display_name="Fake", provider=provider, upstream_model="fake-fast"
    )


def ask(
    workspace: Workspace,
    model: AIModel,
    key: str,
    *,
    temperature: float | None = 0.0,
    cache: bool | None = None,
    max_tokens: int | None = None,
) -> tuple[str, GenerationEnd]:
    return run(
        generation_chat_stream(
            workspace=workspace,
            user=None,
            model=model,
            messages=MESSAGES,
            temperature=temperature,
            idempotency_key=key,
            cache=cache,
            max_tokens=max_tokens,
        )
    )


def opt_in(workspace: Workspace) -> None:
    workspace.response_cache = True
    workspace.save(update_fields=["response_cache"])


def test_hit_is_served_without_calling_the_provider_and_free_by_default(
    workspace: Workspace, fake_model: AIModel, upstream: FakeUpstream
) -> None:
    fund(workspace)
    opt_in(workspace)
    text1, first = ask(workspace, fake_model, "c1")
    balance = account(workspace).balance_units
    text2, second = ask(workspace, fake_model, "c2")
    assert text2 == text1 == "Echo: one two three four five six seven"
    assert len(upstream.requests) == 1
    assert not first.cached
    assert first.credits_units > 0
    assert second.cached
    assert second.credits_units == 0
    assert account(workspace).balance_units == balance
    row = Generation.objects.get(pk=second.generation_id)
    assert row.cached
    assert row.outcome == "ok"
    assert row.credits_charged_units == 0
    assert row.reservation is None
    assert (row.input_tokens, row.output_tokens) == (first.usage.input_tokens, first.usage.output_tokens)
    assert row.attempts == [{"model": "fake-chat", "outcome": "cached"}]
    assert row.provider_cost == 0


@override_config(RESPONSE_CACHE_RATE_PERCENT=50)
def test_hit_is_charged_the_cache_rate(workspace: Workspace, fake_model: AIModel) -> None:
    fund(workspace)
    opt_in(workspace)
    _, first = ask(workspace, fake_model, "r1")
    before = account(workspace).balance_units
    _, second = ask(workspace, fake_model, "r2")
    assert second.cached
    assert second.credits_units == cache_price(first.credits_units, 50) > 0
    assert before - account(workspace).balance_units == second.credits_units
    assert account(workspace).held_units == 0


def test_not_used_without_opt_in_or_for_nondeterministic_requests(
    workspace: Workspace, fake_model: AIModel, upstream: FakeUpstream
) -> None:
    fund(workspace)
    ask(workspace, fake_model, "n1")
    ask(workspace, fake_model, "n2")  # the workspace did not opt in
    opt_in(workspace)
    ask(workspace, fake_model, "n3", temperature=0.7)
    ask(workspace, fake_model, "n4", temperature=0.7)
    ask(workspace, fake_model, "n5", temperature=None)  # provider default: not deterministic
    assert len(upstream.requests) == 5
    assert not Generation.objects.filter(cached=True).exists()


def test_per_request_choice_wins_over_the_workspace(
    workspace: Workspace, fake_model: AIModel, upstream: FakeUpstream
) -> None:
    fund(workspace)
    ask(workspace, fake_model, "p1", cache=True)
    _, hit = ask(workspace, fake_model, "p2", cache=True)
    assert hit.cached
    assert len(upstream.requests) == 1
    opt_in(workspace)
    _, miss = ask(workspace, fake_model, "p3", cache=False)
    assert not miss.cached
    assert len(upstream.requests) == 2


def test_other_workspaces_never_hit_each_others_answers(
    workspace: Workspace, fake_model: AIModel, upstream: FakeUpstream
) -> None:
    other = WorkspaceFactory.create(name="Other")
    for ws in (workspace, other):
        fund(ws, key=f"fund-{ws.pk}")
        opt_in(ws)
    ask(workspace, fake_model, "w1")
    _, end = ask(other, fake_model, "w2")
    assert not end.cached
    assert len(upstream.requests) == 2


def test_changed_parameters_or_messages_miss(workspace: Workspace, fake_model: AIModel, upstream: FakeUpstream) -> None:
    fund(workspace)
    opt_in(workspace)
    ask(workspace, fake_model, "m1")
    ask(workspace, fake_model, "m2", max_tokens=5)
    run(
        generation_chat_stream(
            workspace=workspace,
            user=None,
            model=fake_model,
            messages=[{"role": "user", "content": "something else"}],
            temperature=0.0,
            idempotency_key="m3",
        )
    )
    assert len(upstream.requests) == 3


def test_stopped_or_failed_answers_are_not_cached(workspace: Workspace, mock_model: AIModel) -> None:
    fund(workspace)
    opt_in(workspace)
    stream = generation_chat_stream(
        workspace=workspace, user=None, model=mock_model, messages=MESSAGES, temperature=0.0, idempotency_key="s1"
    )

    async def stop_after_one_delta() -> None:
        await stream.__anext__()
        await stream.aclose()

    async_to_sync(stop_after_one_delta)()
    _, end = ask(workspace, mock_model, "s2")
    assert not end.cached
    mock_model.provider.options = {"fail": "after:2"}
    mock_model.provider.save()
    other = [{"role": "user", "content": "break please now"}]
    for key in ("s3", "s4"):
        run(
            generation_chat_stream(
                workspace=workspace, user=None, model=mock_model, messages=other, temperature=0.0, idempotency_key=key
            )
        )
    assert not Generation.objects.filter(cached=True).exists()


@override_config(RESPONSE_CACHE_TTL_SECONDS=0)
def test_ttl_zero_disables_storing(workspace: Workspace, fake_model: AIModel, upstream: FakeUpstream) -> None:
    fund(workspace)
    opt_in(workspace)
    ask(workspace, fake_model, "t1")
    ask(workspace, fake_model, "t2")
    assert len(upstream.requests) == 2


@pytest.mark.django_db  # no stream runs: not transactional
def test_cache_price_rounds_up() -> None:
    assert cache_price(0, 50) == 0
    assert cache_price(101, 50) == 51
    assert cache_price(3, 0) == 0
    assert cache_price(3, 100) == 3
    assert cache_price(3, 250) == 3  # capped at the provider price
