from __future__ import annotations

from django.db import models


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    MEMBER = "member", "Member"


class Perm(models.TextChoices):
    USE = "use", "Use the workspace"
    MANAGE_SETTINGS = "manage_settings", "Change workspace settings"
    MANAGE_MEMBERS = "manage_members", "Invite and manage members"
    MANAGE_BILLING = "manage_billing", "Manage billing"
    DELETE = "delete", "Delete the workspace"
    MANAGE_CONTENT = "manage_content", "Delete others' documents and publish shared presets"


ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    Role.OWNER: frozenset(Perm.values),
    Role.ADMIN: frozenset({Perm.USE, Perm.MANAGE_SETTINGS, Perm.MANAGE_MEMBERS, Perm.MANAGE_CONTENT}),
    Role.MEMBER: frozenset({Perm.USE}),
}

# Higher rank may manage lower ranks; admins may not touch owners.
ROLE_RANK: dict[str, int] = {Role.MEMBER: 1, Role.ADMIN: 2, Role.OWNER: 3}


def role_has_perm(role: str, perm: str) -> bool:
    return perm in ROLE_PERMISSIONS.get(role, frozenset())
