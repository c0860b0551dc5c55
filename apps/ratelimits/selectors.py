"""Which limits apply to a request.

Precedence, lowest first: the site defaults (constance `RATE_LIMIT_*`, falling back to
`apps.ratelimits.defaults.DEFAULTS` while those keys are not configured), the workspace's plan
(`plan_rate_limits`), the workspace's own `WorkspaceRateLimit` row, and, for the key subject
only, the API key's `rpm_limit`/`tpm_limit`. 0 means unlimited at every level.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from apps.ratelimits.defaults import DEFAULTS, LIMIT_FIELDS, setting_name
from apps.ratelimits.models import WorkspaceRateLimit
from apps.workspaces.selectors import workspace_entitlements

if TYPE_CHECKING:
    from apps.accounts.models import User
    from apps.workspaces.models import Workspace

logger = logging.getLogger(__name__)

Subject = Literal["key", "user", "workspace"]


@dataclass(frozen=True)
class SubjectLimits:
    """The limits of one subject. `id` names its windows in the storage."""

    subject: Subject
    id: str
    rpm: int  # requests per minute, 0: unlimited
    tpm: int  # tokens per minute, 0: unlimited


@dataclass(frozen=True)
class Limits:
    """The limits for one request: the workspace's always, the member's and the key's when the
    request has them."""

    workspace: SubjectLimits
    user: SubjectLimits | None = None
    key: SubjectLimits | None = None

    @property
    def subjects(self) -> tuple[SubjectLimits, ...]:
        """The subjects present, most specific first (key, user, workspace)."""
        return tuple(s for s in (self.key, self.user, self.workspace) if s is not None)


def ratelimit_limits(*, workspace: Workspace, user: User | None = None, api_key: Any = None) -> Limits:
    """The limits that apply to a request of `user` and/or `api_key` in `workspace`.

    `api_key` is any object with `.pk` and optional `.rpm_limit`/`.tpm_limit` (None: the
    workspace's key limits). The member limit counts per member *of this workspace*: the same
    person in two workspaces has two budgets. One query for the override, one for constance.
    """
    values = _site_defaults()
    values.update(plan_rate_limits(workspace=workspace))
    override = WorkspaceRateLimit.objects.filter(workspace_id=workspace.pk).first()
    if override is not None:
        for field in LIMIT_FIELDS:
            value = getattr(override, field)
            if value is not None:
                values[field] = value
    if api_key is not None:
        for field, attr in (("key_rpm", "rpm_limit"), ("key_tpm", "tpm_limit")):
            value = getattr(api_key, attr, None)
            if value is not None:
                values[field] = value
    values = {field: max(0, int(value)) for field, value in values.items()}

    return Limits(
        workspace=SubjectLimits("workspace", str(workspace.pk), values["workspace_rpm"], values["workspace_tpm"]),
        user=(
            SubjectLimits("user", f"{workspace.pk}:{user.pk}", values["user_rpm"], values["user_tpm"])
            if user is not None
            else None
        ),
        key=SubjectLimits("key", str(api_key.pk), values["key_rpm"], values["key_tpm"])
        if api_key is not None
        else None,
    )


def plan_rate_limits(*, workspace: Workspace) -> dict[str, int]:
    """The limits the workspace's plan sets, keyed like the `WorkspaceRateLimit` fields
    (`key_rpm`, …; leave a field out to keep the site default). Merged over the site defaults
    and under the workspace's own override (the plan's `rate_limits` in the admin)."""
    limits = workspace_entitlements(workspace).rate_limits
    return {field: value for field, value in limits.items() if field in LIMIT_FIELDS}


def _site_defaults() -> dict[str, int]:
    """The site defaults from constance, field by field falling back to `DEFAULTS` for any
    `RATE_LIMIT_*` key not (yet) in CONSTANCE_CONFIG. One query for all keys."""
    from constance import settings as constance_settings
    from constance.utils import get_values_for_keys

    names = {field: setting_name(field) for field in LIMIT_FIELDS}
    configured = [name for name in names.values() if name in constance_settings.CONFIG]
    stored: dict[str, Any] = get_values_for_keys(configured) if configured else {}
    values = {}
    for field, name in names.items():
        try:
            values[field] = int(stored.get(name, DEFAULTS[name]))
        except (TypeError, ValueError):
            logger.warning("Rate limit setting %s is not a number (%r); using %s", name, stored[name], DEFAULTS[name])
            values[field] = DEFAULTS[name]
    return values
