"""Low-balance email. Sent by a Celery task enqueued when a charge takes a workspace below one
of its alert levels (once per crossing; see `services._save_account`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from constance import config
from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.template.loader import render_to_string
from django.urls import reverse

from apps.core.sites import absolute_url
from apps.credits.amounts import format_credits
from apps.credits.models import CreditAccount
from apps.credits.selectors import credits_balance
from apps.workspaces.models import Membership
from apps.workspaces.roles import Role

if TYPE_CHECKING:
    from apps.accounts.models import User


def _wants_low_balance_alerts(user: User) -> bool:
    preferences = user.preference("notifications")
    return not isinstance(preferences, dict) or bool(preferences.get("low_balance", True))


def low_balance_recipients(*, account: CreditAccount) -> list[str]:
    """Owners and admins of the workspace who keep low-balance alerts on; suspended people
    and plain members are never emailed."""
    memberships = (
        Membership.objects.filter(
            workspace_id=account.workspace_id,
            role__in=[Role.OWNER, Role.ADMIN],
            user__is_active=True,
            user__suspended_at__isnull=True,
        )
        .select_related("user")
        .order_by("id")
    )
    return [m.user.email for m in memberships if _wants_low_balance_alerts(m.user)]


def low_balance_notify(*, account_id: int, threshold_units: int, base_url: str = "") -> int:
    """Email the workspace's owners and admins who keep low-balance alerts on, linking to the
    credits page on `base_url` (see `apps.core.sites.absolute_url`). Returns the number of emails
    sent: none if the workspace is gone or credits were added (the balance is back at or above
    the threshold) before the task ran."""
    account = CreditAccount.objects.select_related("workspace").filter(pk=account_id).first()
    if account is None or account.workspace.deleted_at is not None:
        return 0
    # Through the selector: a grant past its expiry but not yet swept does not count.
    available = credits_balance(workspace=account.workspace).available_units
    if available >= threshold_units:
        return 0
    recipients = low_balance_recipients(account=account)
    if not recipients:
        return 0
    context = {
        "workspace": account.workspace,
        "threshold": format_credits(threshold_units),
        "available": format_credits(max(available, 0)),
        "site_name": config.SITE_NAME,
        "credits_url": absolute_url(reverse("credits:overview"), base=base_url),
    }
    # Rendered text may hold a newline from a workspace name; a header must not.
    subject = " ".join(render_to_string("credits/email/low_balance_subject.txt", context).split())
    body = render_to_string("credits/email/low_balance_message.txt", context)
    # One message per person (addresses are not shared), over one connection.
    emails = [EmailMessage(subject, body, settings.DEFAULT_FROM_EMAIL, [email]) for email in recipients]
    return get_connection().send_messages(emails) or 0
