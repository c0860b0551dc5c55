from __future__ import annotations

from constance import config
from django.conf import settings
from django.core.mail import send_mail
from django.template.loader import render_to_string
from django.urls import reverse

from apps.workspaces.models import Invitation


def invitation_url(token: str) -> str:
    return settings.SITE_URL.rstrip("/") + reverse("workspaces:invitation_accept", args=[token])


def invitation_send_email(*, invitation: Invitation, token: str) -> None:
    ctx = {
        "invitation": invitation,
        "workspace": invitation.workspace,
        "inviter": invitation.invited_by,
        "accept_url": invitation_url(token),
        "site_name": config.SITE_NAME,
    }
    # One line: a newline in a name would make send_mail refuse the header.
    subject = " ".join(render_to_string("workspaces/email/invitation_subject.txt", ctx).split())
    body = render_to_string("workspaces/email/invitation_message.txt", ctx)
    send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [invitation.email])
