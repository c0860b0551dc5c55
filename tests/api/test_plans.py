"""What the workspace's plan allows through the API: API access, models by plan, and the plan's
rate limits."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from apps.billing.entitlements import entitlements_push_plan
from apps.billing.models import Plan
from apps.billing.seed import billing_seed_catalogue
from apps.billing.services import billing_plan_assign
from apps.credits.models import CreditAccount, Reservation
from apps.generation.models import AIModel
from apps.ratelimits.selectors import ratelimit_limits
from tests.api.conftest import Keyed
from tests.api.test_openai_errors import HELLO, assert_error, call, nothing_charged

pytestmark = pytest.mark.django_db(transaction=True)


def on(keyed: Keyed, code: str) -> Plan:
    plan = Plan.objects.get(code=code)
    billing_plan_assign(workspace=keyed.workspace, plan=plan, acting_user=None)
    return plan


@pytest.fixture
def plans(keyed: Keyed) -> Keyed:
    billing_seed_catalogue()  # Free (the default) has no API access
    return keyed


def model_ids(keyed: Keyed) -> list[str]:
    response = call(keyed.raw, "GET", "/v1/models")
    assert response.status_code == 200, response.text
    return [m["id"] for m in response.json()["data"]]


def test_a_plan_without_api_access_gets_403_on_every_api(plans: Keyed) -> None:
    assert_error(call(plans.raw, "GET", "/v1/models"), 403, "plan_no_api_access")
    assert_error(
        call(plans.raw, "POST", "/v1/chat/completions", {"model": "mock-chat", "messages": HELLO}),
        403,
        "plan_no_api_access",
    )
    response = Client().get("/api/v1/workspace/", HTTP_AUTHORIZATION=f"Bearer {plans.raw}")
    assert response.status_code == 403
    assert "API access" in response.json()["detail"]
    nothing_charged(plans)

    on(plans, "starter")
    assert call(plans.raw, "GET", "/v1/models").status_code == 200


def test_models_limited_to_plans_are_listed_and_usable_only_on_those_plans(plans: Keyed) -> None:
    AIModel.objects.filter(model_id="mock-chat").update(plans=["professional", "enterprise"])
    on(plans, "starter")  # grants the starter plan's monthly credits at once
    before = CreditAccount.objects.get(workspace=plans.workspace).balance_units
    assert "mock-chat" not in model_ids(plans)
    error = assert_error(
        call(plans.raw, "POST", "/v1/chat/completions", {"model": "mock-chat", "messages": HELLO}), 403
    )
    assert "plan" in error["message"]
    account = CreditAccount.objects.get(workspace=plans.workspace)
    assert (account.balance_units, account.held_units) == (before, 0)  # the refusal charged nothing
    assert not Reservation.objects.exists()

    on(plans, "professional")
    assert "mock-chat" in model_ids(plans)
    response = call(plans.raw, "POST", "/v1/chat/completions", {"model": "mock-chat", "messages": HELLO})
    assert response.status_code == 200, response.text


def test_the_plans_rate_limits_apply_under_the_workspace_override(plans: Keyed) -> None:
    plan = on(plans, "starter")
    plan.rate_limits = {"key_rpm": 7, "workspace_tpm": 900}
    plan.save()
    entitlements_push_plan(plan=plan)  # as the admin does when a plan is saved
    limits: Any = ratelimit_limits(workspace=plans.workspace, api_key=plans.key)
    assert (limits.key.rpm, limits.workspace.tpm) == (7, 900)
