"""What the engine announces (apps/generation/signals.py): `generation_completed` once per usage
row when it gets its final outcome, on commit, with the usage charged; never for a row whose
closing was rolled back, and not again when the row is ended a second time."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.utils import timezone

from apps.credits.exceptions import InsufficientCredits
from apps.credits.models import Reservation
from apps.credits.services import credits_sweep
from apps.generation.models import AIModel, Generation
from apps.generation.services import generation_aembed, generation_chat_stream, generation_sweep
from apps.generation.signals import generation_completed
from apps.workspaces.models import Workspace
from tests.events import listening, rolled_back
from tests.factories import UserFactory
from tests.generation.charging import MESSAGES, fund, run, take

pytestmark = [pytest.mark.usefixtures("_ledger_stays_consistent"), pytest.mark.django_db(transaction=True)]

COMPLETED = (
    "pk",
    "workspace_id",
    "outcome",
    "model_label",
    "credits_charged_units",
    "input_tokens",
    "output_tokens",
    "user_id",
    "api_key_id",
)


def test_a_finished_answer_is_announced_once_with_its_usage(workspace: Workspace, mock_model: AIModel) -> None:
    fund(workspace)
    user = UserFactory.create()

    with listening(generation_completed) as heard:
        _, end = run(
            generation_chat_stream(
                workspace=workspace, user=user, model=mock_model, messages=MESSAGES, idempotency_key="a"
            )
        )

    row = Generation.objects.get(pk=end.generation_id)
    assert heard.rows(generation_completed, "generation", *COMPLETED) == [
        (row.pk, workspace.pk, "ok", "mock-chat", end.credits_units, row.input_tokens, row.output_tokens, user.pk, None)
    ]
    assert end.credits_units > 0
    assert row.output_tokens > 0
    assert heard.senders(generation_completed) == [Generation]


def test_a_refusal_is_announced_with_nothing_charged(workspace: Workspace, mock_model: AIModel) -> None:
    fund(workspace, units=1)
    stream = generation_chat_stream(
        workspace=workspace, user=None, model=mock_model, messages=MESSAGES, idempotency_key="poor"
    )

    with listening(generation_completed) as heard, pytest.raises(InsufficientCredits):
        run(stream)

    refused = heard.rows(generation_completed, "generation", "pk", "outcome", "credits_charged_units", "output_tokens")
    assert refused == [(Generation.objects.get().pk, "refused", 0, 0)]


def test_an_embeddings_call_is_announced(workspace: Workspace, mock_model: AIModel) -> None:
    fund(workspace)
    model = AIModel.objects.select_related("provider").get(model_id="mock-embed")

    with listening(generation_completed) as heard:
        result = async_to_sync(generation_aembed)(
            workspace=workspace, user=None, model=model, inputs=["one two three"], idempotency_key="e"
        )

    [sent] = heard.rows(generation_completed, "generation", *COMPLETED[:6])
    assert sent == (result.generation_id, workspace.pk, "ok", "mock-embed", result.credits_units, result.input_tokens)
    assert result.credits_units > 0


def test_an_answer_ended_after_the_sweeper_closed_its_row_is_announced_once(
    workspace: Workspace, mock_model: AIModel
) -> None:
    """The worker looked dead: the sweeps settled its hold and closed its row (announced). When the
    stream does end, its settlement finds the hold already settled and its row closed: no second
    announcement."""
    fund(workspace)
    mock_model.provider.options = {"latency_ms": 0, "reply": " ".join(f"w{i}" for i in range(30))}
    mock_model.provider.save()
    stream = generation_chat_stream(
        workspace=workspace, user=None, model=mock_model, messages=MESSAGES, idempotency_key="slow"
    )

    def sweeps() -> None:
        credits_sweep(older_than=timedelta(0))
        assert generation_sweep(older_than=timedelta(0)) == 1

    async def scenario() -> None:
        await take(stream, 10)
        await sync_to_async(sweeps)()
        await stream.aclose()

    with listening(generation_completed) as heard:
        async_to_sync(scenario)()

    [(outcome, charged)] = heard.rows(generation_completed, "generation", "outcome", "credits_charged_units")
    assert outcome == "interrupted"
    assert charged == Reservation.objects.get().charged_units > 0


@pytest.mark.django_db  # not transactional: the test's transaction shows when the signal goes out
def test_a_closed_row_is_announced_on_commit_and_never_when_rolled_back(
    workspace: Workspace, django_capture_on_commit_callbacks: Any
) -> None:
    row = Generation.objects.create(
        workspace=workspace,
        model_label="mock-chat",
        outcome=Generation.Outcome.PENDING,
        created_at=timezone.now() - timedelta(hours=1),
    )

    with listening(generation_completed) as heard:
        rolled_back(lambda: generation_sweep(older_than=timedelta(0)))
        assert heard.of(generation_completed) == []
        row.refresh_from_db()
        assert row.outcome == Generation.Outcome.PENDING

        with django_capture_on_commit_callbacks() as callbacks:
            assert generation_sweep(older_than=timedelta(0)) == 1
            assert generation_sweep(older_than=timedelta(0)) == 0  # closed: left alone
        assert heard.of(generation_completed) == []
        for callback in callbacks:
            callback()

    assert heard.rows(generation_completed, "generation", "pk", "outcome") == [(row.pk, "interrupted")]
