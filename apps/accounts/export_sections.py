from __future__ import annotations

from typing import TYPE_CHECKING, Any

from apps.accounts.exporters import register

if TYPE_CHECKING:
    from apps.accounts.models import User


@register("profile")
def export_profile(user: User) -> dict[str, Any]:
    return {
        "id": user.pk,
        "email": user.email,
        "display_name": user.display_name,
        "avatar": user.avatar.name if user.avatar else None,
        "locale": user.locale,
        "timezone": user.timezone,
        "preferences": user.preferences,
        "date_joined": user.date_joined.isoformat(),
        "last_login": user.last_login.isoformat() if user.last_login else None,
    }


@register("email_addresses")
def export_emails(user: User) -> list[dict[str, Any]]:
    from allauth.account.models import EmailAddress

    return [
        {"email": e.email, "verified": e.verified, "primary": e.primary}
        for e in EmailAddress.objects.filter(user=user).order_by("id")
    ]


@register("social_accounts")
def export_social(user: User) -> list[dict[str, Any]]:
    from allauth.socialaccount.models import SocialAccount

    return [
        {"provider": a.provider, "uid": a.uid, "date_joined": a.date_joined.isoformat()}
        for a in SocialAccount.objects.filter(user=user).order_by("id")
    ]


@register("sessions")
def export_sessions(user: User) -> list[dict[str, Any]]:
    from allauth.usersessions.models import UserSession

    return [
        {
            "ip": s.ip,
            "user_agent": s.user_agent,
            "created_at": s.created_at.isoformat(),
            "last_seen_at": s.last_seen_at.isoformat() if s.last_seen_at else None,
        }
        for s in UserSession.objects.filter(user=user).order_by("id")
    ]


@register("activity")
def export_activity(user: User) -> list[dict[str, Any]]:
    from apps.audit.models import AuditEvent

    return [
        {
            "at": e.created_at.isoformat(),
            "action": e.action,
            "target": e.target_label,
            "workspace_id": e.workspace_id,
            "ip": e.ip,
        }
        for e in AuditEvent.objects.filter(actor=user).order_by("created_at", "id").iterator()
    ]
