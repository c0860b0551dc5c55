from __future__ import annotations

import io
import re

import pytest
from allauth.account.models import EmailAddress
from django.core.management import call_command
from django.test import Client

from apps.accounts.models import User
from apps.billing.models import Plan
from apps.credits.models import CreditGrant, Source
from apps.dashboard.management.commands.seed_demo import DEMO_EMAIL, DEMO_TEAM, STAFF_EMAIL
from apps.workspaces.models import Workspace

pytestmark = pytest.mark.django_db


def _seed() -> list[str]:
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue().splitlines()


def _printed_password(lines: list[str], email: str) -> str:
    for line in lines:
        match = re.search(rf"{re.escape(email)} / (\S+)", line)
        if match:
            return match.group(1)
    raise AssertionError(f"no password printed for {email}: {lines}")


def test_creates_staff_superuser_and_demo_user_with_workspaces():
    lines = _seed()

    assert lines[0] == f"seed_demo: created {STAFF_EMAIL}, {DEMO_EMAIL}, {DEMO_TEAM}"
    staff = User.objects.get(email=STAFF_EMAIL)
    assert (staff.is_staff, staff.is_superuser, staff.is_active) == (True, True, True)
    demo = User.objects.get(email=DEMO_EMAIL)
    assert (demo.is_staff, demo.is_superuser) == (False, False)
    demo_workspaces = sorted(Workspace.objects.for_user(demo).values_list("is_personal", "name"))
    assert demo_workspaces == [(False, DEMO_TEAM), (True, "Demo User's workspace")]
    assert Workspace.objects.for_user(staff).filter(is_personal=True).count() == 1


def test_running_twice_changes_nothing():
    _seed()
    counts = (User.objects.count(), Workspace.objects.count(), EmailAddress.objects.count())

    lines = _seed()

    assert lines[0] == "seed_demo: demo data already present"
    assert (User.objects.count(), Workspace.objects.count(), EmailAddress.objects.count()) == counts
    assert User.objects.filter(is_staff=True, is_superuser=True).count() == 1
    assert User.objects.filter(email=DEMO_EMAIL).count() == 1
    assert Workspace.objects.filter(name=DEMO_TEAM).count() == 1


def test_demo_user_is_verified_and_logs_in_with_the_printed_password():
    lines = _seed()
    password = _printed_password(lines, DEMO_EMAIL)

    assert EmailAddress.objects.get(email=DEMO_EMAIL).verified
    client = Client()
    response = client.post("/accounts/login/", {"login": DEMO_EMAIL, "password": password})
    assert response.status_code == 302
    assert response["Location"] == "/dashboard/"
    assert client.get("/dashboard/").status_code == 200


def test_staff_logs_into_the_admin_with_the_printed_password():
    lines = _seed()
    password = _printed_password(lines, STAFF_EMAIL)

    client = Client()
    assert client.login(email=STAFF_EMAIL, password=password)
    assert client.get("/admin/").status_code == 200


def test_passwords_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("DEMO_USER_PASSWORD", "from-the-env-42x")

    lines = _seed()

    assert _printed_password(lines, DEMO_EMAIL) == "from-the-env-42x"
    assert User.objects.get(email=DEMO_EMAIL).check_password("from-the-env-42x")


def test_recreates_the_demo_team_when_it_is_missing():
    _seed()
    from apps.workspaces.services import workspace_delete_by_system

    workspace_delete_by_system(workspace=Workspace.objects.get(name=DEMO_TEAM), acting_user=None, reason="test")

    lines = _seed()

    assert lines[0] == f"seed_demo: created {DEMO_TEAM}"
    assert Workspace.objects.for_user(User.objects.get(email=DEMO_EMAIL)).filter(name=DEMO_TEAM).count() == 1


def test_development_uses_the_documented_demo_passwords(settings, monkeypatch):
    settings.DEBUG = True
    monkeypatch.delenv("DEMO_ADMIN_PASSWORD", raising=False)
    monkeypatch.delenv("DEMO_USER_PASSWORD", raising=False)

    lines = _seed()

    assert _printed_password(lines, STAFF_EMAIL) == "admin-demo-pass"
    assert User.objects.get(email=STAFF_EMAIL).check_password("admin-demo-pass")


def test_outside_development_the_superuser_gets_a_random_password_printed_once(settings, monkeypatch):
    settings.DEBUG = False
    monkeypatch.delenv("DEMO_ADMIN_PASSWORD", raising=False)
    monkeypatch.delenv("DEMO_USER_PASSWORD", raising=False)

    first = _printed_password(_seed(), STAFF_EMAIL)
    assert first != "admin-demo-pass"
    assert User.objects.get(email=STAFF_EMAIL).check_password(first)

    again = "\n".join(_seed())
    assert first not in again
    assert "password set when first created" in again


def test_demo_workspaces_get_demo_credits_once():
    from apps.credits.selectors import credits_balance

    _seed()
    _seed()
    demo = User.objects.get(email=DEMO_EMAIL)
    team = Workspace.objects.for_user(demo).get(name=DEMO_TEAM)
    # The demo credits, once, and this month's credits of the Professional plan it is put on.
    professional = Plan.objects.get(code="professional")
    assert credits_balance(workspace=team).available_units == 500 * 10_000 + professional.monthly_credit_units
    # The personal workspace, made before the plans existed, has the Free plan's month too.
    personal = Workspace.objects.for_user(demo).get(is_personal=True)
    month = CreditGrant.objects.filter(workspace=personal, source=Source.SUBSCRIPTION)
    assert list(month.values_list("amount_units", flat=True)) == [Plan.objects.get(code="free").monthly_credit_units]
