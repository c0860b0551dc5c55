from __future__ import annotations

from constance import config
from django.conf import settings
from django.core.mail import send_mail
from django.template.loader import render_to_string
from django.urls import reverse

from apps.credits.amounts import format_credits
from apps.credits.models import CreditAccount
from apps.workspaces.models import Membership
from apps.workspaces.roles import Role


def low_balance_notify(*, account_id: int, threshold_units: int) -> int:
    """Email the workspace's owners and admins who keep low-balance alerts on. Returns the
    number of emails sent."""
    account = CreditAccount.objects.select_related("workspace").filter(pk=account_id).first()
    if account is None or account.workspace.deleted_at is not None:
        return 0
    recipients = [
        m.user.email
        for m in Membership.objects.filter(workspace=account.workspace, role__in=[Role.OWNER, Role.ADMIN])
        .select_related("user")
        .order_by("id")
        if m.user.is_active and m.user.preference("notifications").get("low_balance", True)
    ]
    if not recipients:
        return 0
    context = {
        "workspace": account.workspace,
        "threshold": format_credits(threshold_units),
        "available": format_credits(max(account.available_units, 0)),
        "site_name": config.SITE_NAME,
        "credits_url": settings.SITE_URL.rstrip("/") + reverse("credits:overview"),
    }
    subject = " ".join(render_to_string("credits/email/low_balance_subject.txt", context).split())
    body = render_to_string("credits/email/low_balance_message.txt", context)
    for email in recipients:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [email])
    return len(recipients)
