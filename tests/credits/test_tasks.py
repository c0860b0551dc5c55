"""The credits Celery tasks, run eagerly: the low-balance email (who gets it, what it says,
once per crossing, retried when the mail server fails), the sweeper and the expiry task."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from constance.test.pytest import override_config
from django.conf import settings
from django.contrib.sites.models import Site
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend
from django.utils import timezone

from aikeedo.celery import app
from apps.accounts.services import user_suspend
from apps.core.sites import base_url_scope
from apps.credits.models import CreditAccount, CreditGrant, Reservation, Source
from apps.credits.services import credits_account_open, credits_grant, credits_reserve
from apps.credits.tasks import expire_grants, send_low_balance_alert, sweep_stale_reservations
from apps.workspaces.models import Workspace
from tests.conftest import Team
from tests.credits.helpers import assert_ledger_consistent
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

HUNDRED = 1_000_000  # units
TEN = 100_000


def account_with(workspace: Workspace, credits: str, thresholds: list[int] | None = None) -> CreditAccount:
    account = credits_account_open(workspace=workspace)
    CreditAccount.objects.filter(pk=account.pk).update(alert_thresholds=thresholds or [HUNDRED, TEN], alert_level=0)
    credits_grant(workspace=workspace, amount=credits, source=Source.PURCHASED, idempotency_key=f"fund-{workspace.pk}")
    return CreditAccount.objects.get(pk=account.pk)


def recipients() -> list[str]:
    return sorted(address for message in mail.outbox for address in message.to)


# ---------------------------------------------------------------------------- recipients & content


def test_alert_goes_to_owners_and_admins_not_members(alpha: Team, beta: Team):
    account = account_with(alpha.workspace, "5")

    sent = send_low_balance_alert.delay(account.pk, TEN).get()

    assert sent == 2
    assert recipients() == ["alpha-admin@example.com", "alpha-owner@example.com"]
    assert all(len(message.to) == 1 for message in mail.outbox)  # nobody sees the others' address


def test_alert_skips_people_who_turned_low_balance_alerts_off(alpha: Team):
    alpha.admin.preferences = {"notifications": {"low_balance": False, "security": True}}
    alpha.admin.save(update_fields=["preferences"])
    alpha.owner.preferences = {"notifications": {"product_updates": False}}  # low_balance unset: on
    alpha.owner.save(update_fields=["preferences"])
    account = account_with(alpha.workspace, "5")

    send_low_balance_alert.delay(account.pk, TEN)

    assert recipients() == ["alpha-owner@example.com"]


def test_alert_skips_suspended_owners_and_admins(alpha: Team):
    staff = UserFactory.create(is_staff=True)
    user_suspend(user=alpha.admin, reason="abuse", acting_user=staff)
    second_owner = UserFactory.create(email="alpha-owner2@example.com")
    MembershipFactory.create(workspace=alpha.workspace, user=second_owner, role="owner")
    account = account_with(alpha.workspace, "5")

    send_low_balance_alert.delay(account.pk, TEN)

    assert recipients() == ["alpha-owner2@example.com", "alpha-owner@example.com"]


def test_alert_email_says_which_workspace_how_much_is_left_and_where_to_go(alpha: Team, settings):
    settings.SITE_URL = ""
    Workspace.objects.filter(pk=alpha.workspace.pk).update(name="Alpha\nLabs")
    account = account_with(alpha.workspace, "7.25")

    with override_config(SITE_NAME="Aikeedo Cloud"):
        send_low_balance_alert.delay(account.pk, TEN)

    message = mail.outbox[0]
    assert message.subject == "Alpha Labs is low on credits (7.25 left)"
    assert message.from_email == settings.DEFAULT_FROM_EMAIL
    assert 'The workspace "Alpha\nLabs" on Aikeedo Cloud has 7.25 credits left, below your alert level of 10' in (
        message.body
    )
    # No request and no SITE_URL: the Sites framework's domain (staff can edit it in the admin).
    assert f"http://{Site.objects.get_current().domain}/credits/" in message.body


def test_no_alert_when_credits_were_added_before_the_task_ran(alpha: Team):
    account = account_with(alpha.workspace, "5")
    credits_grant(workspace=alpha.workspace, amount="50", source=Source.PURCHASED, idempotency_key="top-up")

    assert send_low_balance_alert.delay(account.pk, TEN).get() == 0
    assert mail.outbox == []


def test_no_alert_for_a_deleted_workspace_or_a_missing_account(alpha: Team):
    account = account_with(alpha.workspace, "5")
    Workspace.objects.filter(pk=alpha.workspace.pk).update(deleted_at=timezone.now())

    assert send_low_balance_alert.delay(account.pk, TEN).get() == 0
    assert send_low_balance_alert.delay(999_999, TEN).get() == 0
    assert mail.outbox == []


# ---------------------------------------------------------------------------- once per crossing


def test_spending_below_a_threshold_emails_once_per_crossing(alpha: Team, django_capture_on_commit_callbacks):
    account_with(alpha.workspace, "150")

    def spend(key: str, credits: str) -> None:
        with django_capture_on_commit_callbacks(execute=True):
            credits_reserve(workspace=alpha.workspace, amount=credits, idempotency_key=key)

    spend("a", "40")  # 110 left: above both levels
    assert mail.outbox == []

    spend("b", "20")  # 90 left: below 100
    assert len(mail.outbox) == 2
    assert "below your alert level of 100 credits" in mail.outbox[0].body

    spend("c", "30")  # 60 left: still below 100, no new crossing
    assert len(mail.outbox) == 2

    spend("d", "55")  # 5 left: below 10
    assert len(mail.outbox) == 4
    assert "has 5 credits left, below your alert level of 10 credits" in mail.outbox[-1].body
    assert_ledger_consistent()


def test_credits_added_above_the_threshold_rearm_the_alert(alpha: Team, django_capture_on_commit_callbacks):
    account_with(alpha.workspace, "150", thresholds=[HUNDRED])
    with django_capture_on_commit_callbacks(execute=True):
        credits_reserve(workspace=alpha.workspace, amount="60", idempotency_key="first")
    assert len(mail.outbox) == 2
    credits_grant(workspace=alpha.workspace, amount="100", source=Source.PURCHASED, idempotency_key="top-up")

    with django_capture_on_commit_callbacks(execute=True):
        credits_reserve(workspace=alpha.workspace, amount="120", idempotency_key="second")

    assert len(mail.outbox) == 4


# ---------------------------------------------------------------------------- links


def test_the_alert_links_to_the_address_of_the_request_whose_charge_crossed_the_level(
    alpha: Team, django_capture_on_commit_callbacks, settings
):
    settings.SITE_URL = ""
    account_with(alpha.workspace, "150", thresholds=[HUNDRED])

    # As a page or socket on `make run` at another port: the request's base is current.
    with base_url_scope("http://127.0.0.1:8031"), django_capture_on_commit_callbacks(execute=True):
        credits_reserve(workspace=alpha.workspace, amount="60", idempotency_key="spend")

    assert len(mail.outbox) == 2
    assert all("http://127.0.0.1:8031/credits/" in message.body for message in mail.outbox)
    assert "8000" not in mail.outbox[0].body


def test_the_task_carries_the_requests_address_to_the_worker(alpha: Team, settings):
    settings.SITE_URL = ""
    account = account_with(alpha.workspace, "5")

    send_low_balance_alert.apply(args=(account.pk, TEN, "http://localhost:9000"))

    assert "http://localhost:9000/credits/" in mail.outbox[0].body


def test_an_explicit_site_url_wins_over_the_requests_address(alpha: Team, settings):
    settings.SITE_URL = "https://aikeedo.example.com"
    account = account_with(alpha.workspace, "5")

    send_low_balance_alert.apply(args=(account.pk, TEN, "http://localhost:9000"))

    assert "https://aikeedo.example.com/credits/" in mail.outbox[0].body
    assert "localhost" not in mail.outbox[0].body


# ---------------------------------------------------------------------------- retries


class FlakyBackend(EmailBackend):
    """The mail server refuses the first connection attempt (at the network edge)."""

    failures = 0

    def send_messages(self, messages: Any) -> int:
        if FlakyBackend.failures == 0:
            FlakyBackend.failures += 1
            raise ConnectionRefusedError("mail server down")
        return super().send_messages(messages)


def test_alert_is_retried_when_the_mail_server_fails(alpha: Team, settings):
    settings.EMAIL_BACKEND = f"{__name__}.FlakyBackend"
    FlakyBackend.failures = 0
    account = account_with(alpha.workspace, "5")

    # As a worker runs it (eager `.delay()` propagates errors instead of retrying).
    result = send_low_balance_alert.apply(args=(account.pk, TEN), throw=False)

    assert result.get() == 2
    assert FlakyBackend.failures == 1
    assert recipients() == ["alpha-admin@example.com", "alpha-owner@example.com"]


# ---------------------------------------------------------------------------- sweeper & expiry


@override_config(RESERVATION_MAX_AGE_MINUTES=30)
def test_sweeper_task_releases_holds_older_than_the_configured_age(alpha: Team):
    account_with(alpha.workspace, "100")
    stale = credits_reserve(workspace=alpha.workspace, amount="10", idempotency_key="stale")
    fresh = credits_reserve(workspace=alpha.workspace, amount="10", idempotency_key="fresh")
    Reservation.objects.filter(pk=stale.pk).update(created_at=timezone.now() - timedelta(minutes=31))
    Reservation.objects.filter(pk=fresh.pk).update(created_at=timezone.now() - timedelta(minutes=29))

    result = sweep_stale_reservations.delay().get()

    assert result == {"settled": 0, "released": 1}
    assert Reservation.objects.get(pk=stale.pk).status == Reservation.Status.RELEASED
    assert Reservation.objects.get(pk=fresh.pk).status == Reservation.Status.HELD
    assert_ledger_consistent()


def test_expiry_task_removes_credits_of_grants_past_expiry(alpha: Team):
    account_with(alpha.workspace, "100")
    trial = credits_grant(
        workspace=alpha.workspace,
        amount="20",
        source=Source.TRIAL,
        idempotency_key="trial",
        expires_at=timezone.now() + timedelta(days=1),
    )
    past = timezone.now() - timedelta(minutes=1)  # a day later
    CreditGrant.objects.filter(pk=trial.pk).update(expires_at=past)
    CreditAccount.objects.filter(workspace=alpha.workspace).update(next_expiry_at=past)

    assert expire_grants.delay().get() == 200_000
    assert CreditAccount.objects.get(workspace=alpha.workspace).balance_units == HUNDRED
    assert expire_grants.delay().get() == 0
    assert_ledger_consistent()


def test_every_scheduled_task_exists():
    app.loader.import_default_modules()  # what a worker does at start: autodiscover every app's tasks
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}

    assert scheduled == {
        "apps.credits.tasks.sweep_stale_reservations",
        "apps.credits.tasks.expire_grants",
        "apps.generation.tasks.sweep_interrupted",
        "apps.chat.tasks.sweep_interrupted",
        "apps.chat.tasks.purge_unsent_attachments",
        "apps.documents.tasks.purge_trash",
        "apps.media.tasks.sweep_stale_jobs",
        "apps.media.tasks.cleanup_media",
        "apps.billing.tasks.retry_failed_events",
        "apps.billing.tasks.billing_daily",
    }
    assert scheduled <= set(app.tasks)
