from __future__ import annotations

from constance import config
from django.conf import settings
from django.core.mail import send_mail
from django.template.loader import render_to_string
from django.urls import reverse

from apps.core.sites import absolute_url
from apps.workspaces.models import Invitation


def invitation_url(token: str, base_url: str = "") -> str:
    """The accept link, on the site the invitation was sent from (`apps.core.sites`)."""
    return absolute_url(reverse("workspaces:invitation_accept", args=[token]), base=base_url)


def invitation_send_email(*, invitation: Invitation, token: str, base_url: str = "") -> None:
    ctx = {
        "invitation": invitation,
        "workspace": invitation.workspace,
        "inviter": invitation.invited_by,
        "accept_url": invitation_url(token, base_url),
        "site_name": config.SITE_NAME,
    }
    # One line: a newline in a name would make send_mail refuse the header.
    subject = " ".join(render_to_string("workspaces/email/invitation_subject.txt", ctx).split())
    body = render_to_string("workspaces/email/invitation_message.txt", ctx)
    send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [invitation.email])
