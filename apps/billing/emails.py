"""Billing emails to a workspace's owners: receipts for payments, payment failures with the
grace period, restriction after it. Sent after the fulfilment commits (never inside it). Links
point at SITE_URL, else at the address the Stripe event reached (captured when the email is
scheduled, and carried by `tasks.process_event`), else the Sites framework's domain."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from constance import config
from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.template.loader import render_to_string
from django.urls import reverse

from apps.billing.models import Fulfilment
from apps.core.sites import absolute_url
from apps.workspaces.models import Membership, Workspace
from apps.workspaces.roles import Role


def owner_emails(workspace_id: int) -> list[str]:
    memberships = (
        Membership.objects.filter(
            workspace_id=workspace_id, role=Role.OWNER, user__is_active=True, user__suspended_at__isnull=True
        )
        .select_related("user")
        .order_by("id")
    )
    return [m.user.email for m in memberships]


def _send(workspace: Workspace, template: str, context: dict[str, Any], base_url: str = "") -> int:
    recipients = owner_emails(workspace.pk)
    if not recipients:
        return 0
    context = {
        "workspace": workspace,
        "site_name": config.SITE_NAME,
        "billing_url": absolute_url(reverse("billing:overview"), base=base_url),
        **context,
    }
    subject = " ".join(render_to_string(f"billing/email/{template}_subject.txt", context).split())
    body = render_to_string(f"billing/email/{template}_message.txt", context)
    emails = [EmailMessage(subject, body, settings.DEFAULT_FROM_EMAIL, [email]) for email in recipients]
    return get_connection().send_messages(emails) or 0


def send_receipt(fulfilment_key: str, base_url: str = "") -> int:
    """`base_url`: where the Stripe event that paid reached the site (captured when the email
    was scheduled), for the link when SITE_URL is not set."""
    fulfilment = Fulfilment.objects.select_related("workspace").filter(key=fulfilment_key).first()
    if fulfilment is None or fulfilment.amount_cents <= 0:
        return 0
    return _send(fulfilment.workspace, "receipt", {"fulfilment": fulfilment}, base_url)


def send_payment_failed(workspace_id: int, grace_until: datetime | None, base_url: str = "") -> int:
    workspace = Workspace.objects.filter(pk=workspace_id).first()
    if workspace is None:
        return 0
    return _send(workspace, "payment_failed", {"grace_until": grace_until}, base_url)


def send_restricted(workspace_id: int) -> int:
    workspace = Workspace.objects.filter(pk=workspace_id).first()
    if workspace is None:
        return 0
    return _send(workspace, "restricted", {})
