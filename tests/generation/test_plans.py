"""Models limited to plans (`AIModel.plans`) in the engine: the pipeline looks up the workspace's
plan itself (`workspace_plan_code`), refuses a model outside it, and leaves fallbacks outside it
out of the chain, for chat and embeddings alike."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync

from apps.credits.models import Reservation
from apps.generation.exceptions import GenerationRefused
from apps.generation.models import AIModel, Capability, Generation, ModelFallback
from apps.generation.services import generation_aembed, generation_chain, generation_chat_stream
from apps.workspaces.entitlements import Entitlements
from apps.workspaces.models import Workspace
from apps.workspaces.services import workspace_entitlements_set
from tests.generation.charging import MESSAGES, fund, run, second_model

pytestmark = [pytest.mark.usefixtures("_ledger_stays_consistent"), pytest.mark.django_db(transaction=True)]


def on_plan(workspace: Workspace, code: str) -> None:
    workspace_entitlements_set(workspace=workspace, entitlements=Entitlements(plan_code=code, plan_name=code))


def only_for(model: AIModel, *plans: str) -> None:
    model.plans = list(plans)
    model.save()


def test_a_chat_model_outside_the_workspaces_plan_is_refused(workspace: Workspace, mock_model: AIModel) -> None:
    fund(workspace)
    only_for(mock_model, "pro")
    on_plan(workspace, "free")
    stream = generation_chat_stream(
        workspace=workspace, user=None, model=mock_model, messages=MESSAGES, idempotency_key="free"
    )
    with pytest.raises(GenerationRefused, match="Your plan does not include mock-chat"):
        run(stream)
    assert not Reservation.objects.exists()

    on_plan(workspace, "pro")
    _, end = run(
        generation_chat_stream(
            workspace=workspace, user=None, model=mock_model, messages=MESSAGES, idempotency_key="pro"
        )
    )
    assert end.outcome == Generation.Outcome.OK


def test_an_embeddings_model_is_usable_on_its_plan_only(workspace: Workspace, mock_model: AIModel) -> None:
    fund(workspace)
    model = AIModel.objects.select_related("provider").get(model_id="mock-embed")
    only_for(model, "pro")

    def embed(key: str) -> int:
        result = async_to_sync(generation_aembed)(
            workspace=workspace, user=None, model=model, inputs=["hello"], idempotency_key=key
        )
        return result.credits_units

    on_plan(workspace, "free")
    with pytest.raises(GenerationRefused, match="plan"):
        embed("free")
    on_plan(workspace, "pro")
    assert embed("pro") > 0
    assert list(Generation.objects.order_by("id").values_list("outcome", flat=True)) == ["refused", "ok"]


def test_fallbacks_outside_the_plan_or_capability_are_left_out_of_the_chain(mock_model: AIModel) -> None:
    for position, (model_id, plans, chat) in enumerate(
        [("for-pro", ["pro"], True), ("for-free", ["free"], True), ("embed-only", [], False)]
    ):
        fallback = second_model(model_id)
        fallback.plans, fallback.supports_chat = plans, chat
        fallback.save()
        ModelFallback.objects.create(model=mock_model, fallback=fallback, position=position)

    chain = generation_chain(model=mock_model, capability=Capability.CHAT, plan_code="free")

    assert [target.label for target in chain] == ["mock-chat", "for-free"]
