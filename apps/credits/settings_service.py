"""Workspace credit settings: spending caps and low-balance alerts. Kept apart from
`services.py` (the ledger) because nothing here moves credits."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import transaction

from apps.audit.services import audit_record
from apps.credits.exceptions import CreditsError
from apps.credits.models import CreditAccount
from apps.credits.services import account_lock
from apps.workspaces.roles import Perm
from apps.workspaces.services import require_perm

if TYPE_CHECKING:
    from apps.accounts.models import User

CAP_FIELDS = ("daily_cap_units", "monthly_cap_units", "member_daily_cap_units", "member_monthly_cap_units")
LIMIT_FIELDS = (*CAP_FIELDS, "alert_thresholds")
MAX_THRESHOLDS = 10
# A cap or threshold above this (10^14 credits) is a typo, and would not fit the columns' sums.
MAX_UNITS = 10**18


def _positive_units(name: str, value: Any, *, optional: bool) -> int | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise CreditsError(f"{name}: give a whole number of units.")
    if value <= 0:
        raise CreditsError(f"{name}: the amount must be greater than zero.")
    if value > MAX_UNITS:
        raise CreditsError(f"{name}: the amount is too large.")
    return value


def _clean(fields: dict[str, Any]) -> dict[str, Any]:
    clean: dict[str, Any] = {}
    for name in CAP_FIELDS:
        if name in fields:
            clean[name] = _positive_units(name, fields[name], optional=True)
    if "alert_thresholds" in fields:
        values = fields["alert_thresholds"]
        if not isinstance(values, (list, tuple)):
            raise CreditsError("alert_thresholds: give a list of amounts.")
        thresholds = sorted({_positive_units("alert_thresholds", v, optional=False) or 0 for v in values}, reverse=True)
        if len(thresholds) > MAX_THRESHOLDS:
            raise CreditsError(f"Give at most {MAX_THRESHOLDS} low-balance thresholds.")
        clean["alert_thresholds"] = thresholds
    return clean


@transaction.atomic
def credits_settings_update(
    *, account: CreditAccount, acting_user: User, as_staff: bool = False, **fields: Any
) -> CreditAccount:
    """Change the workspace's caps and alert thresholds (needs manage_settings). Only the fields
    given change; an audit row records each change from → to. Raises CreditsError (invalid
    value) or WorkspacePermissionDenied. `as_staff` is the back office: staff need no membership."""
    unknown = set(fields) - set(LIMIT_FIELDS)
    if unknown:
        raise TypeError(f"Unknown credit settings: {', '.join(sorted(unknown))}")
    workspace = account.workspace
    if as_staff and not acting_user.is_staff:
        raise CreditsError("Only staff can change another workspace's settings.")
    if not as_staff:
        require_perm(workspace=workspace, user=acting_user, perm=Perm.MANAGE_SETTINGS)
    clean = _clean(fields)
    # Under the account lock: a reservation checking caps, or a low-balance alert reading the
    # thresholds, sees the old settings or the new ones, never half of each.
    locked = account_lock(workspace)
    changes = {
        name: {"from": getattr(locked, name), "to": value}
        for name, value in clean.items()
        if getattr(locked, name) != value
    }
    if not changes:
        return locked
    for name, value in clean.items():
        setattr(locked, name, value)
    update_fields = [*changes, "updated_at"]
    if "alert_thresholds" in changes:
        # The thresholds the balance is already below count as notified: changing them is not
        # news; the next crossing caused by spending alerts.
        locked.alert_level = sum(1 for t in locked.alert_thresholds if locked.available_units < t)
        update_fields.append("alert_level")
    locked.save(update_fields=update_fields)
    audit_record(
        actor=acting_user,
        action="credits.settings_update",
        target=locked,
        workspace=workspace,
        metadata={"changes": changes, **({"via": "admin"} if as_staff else {})},
    )
    return locked
