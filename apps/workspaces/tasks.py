from __future__ import annotations

from celery import shared_task


@shared_task(autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def send_invitation_email(invitation_id: int, token: str, base_url: str = "") -> None:
    """`base_url`: the address the invitation was sent from (its link points there unless
    SITE_URL is set); empty for messages queued before it was passed."""
    from apps.workspaces.emails import invitation_send_email
    from apps.workspaces.models import Invitation
    from apps.workspaces.services import hash_token

    invitation = Invitation.objects.select_related("workspace", "invited_by").filter(pk=invitation_id).first()
    if invitation is None or not invitation.is_open:
        return
    if invitation.token_hash != hash_token(token):
        # Resent since this task was queued (or is a retry): that email carries the live link.
        return
    invitation_send_email(invitation=invitation, token=token, base_url=base_url)
