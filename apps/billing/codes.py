"""Redemption codes: staff create them in batches (the admin), users redeem one into a workspace
for credits and/or a plan for some days.

A code is redeemed at most once per workspace (unique (code, workspace)) and by at most
`max_redemptions` workspaces (a conditional increment under the code's row lock, backed by a
CheckConstraint). The credits are granted with a key per (code, workspace), so nothing is ever
granted twice for one redemption.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from django.db import IntegrityError, transaction
from django.db.models import F
from django.db.models.functions import Upper
from django.utils import timezone

from apps.audit.services import audit_record
from apps.billing.fulfilment import account_for_workspace
from apps.billing.models import Fulfilment, Plan, PlanSource, Redemption, RedemptionCode
from apps.billing.services import billing_plan_assign
from apps.core.errors import DomainError
from apps.credits.amounts import AmountError, format_credits, to_credits, to_units
from apps.credits.models import Source
from apps.credits.services import credits_grant
from apps.workspaces.services import membership_for

if TYPE_CHECKING:
    from apps.accounts.models import User
    from apps.workspaces.models import Workspace

# No 0/O, 1/I/L: codes are read off screens and paper and typed back.
ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
GROUPS = 3
GROUP_LENGTH = 4
MAX_BATCH = 10_000
PREFIX_RE = re.compile(r"[A-Z0-9]{1,16}")


class CodeError(DomainError):
    """A code that cannot be created or redeemed, with a message for the user."""

    status_code = 400
    code = "invalid_code"


def code_normalise(code: str) -> str:
    """What a user typed, as stored: trimmed, upper case, inner spaces dropped."""
    return re.sub(r"\s+", "", code or "").upper()


def _random_code(prefix: str) -> str:
    groups = ["".join(secrets.choice(ALPHABET) for _ in range(GROUP_LENGTH)) for _ in range(GROUPS)]
    return "-".join([prefix, *groups] if prefix else groups)


def _new_codes(count: int, prefix: str) -> list[str]:
    """`count` random codes, none already in use (31^12 codes: a clash is rare, not impossible)."""
    codes: set[str] = set()
    while len(codes) < count:
        candidates = {_random_code(prefix) for _ in range(count - len(codes))}
        taken = set(
            RedemptionCode.objects.annotate(upper=Upper("code"))
            .filter(upper__in=candidates)
            .values_list("upper", flat=True)
        )
        codes |= candidates - taken
    return sorted(codes)


def billing_codes_create(
    *,
    count: int,
    credits: Decimal | None,
    plan: Plan | None,
    plan_days: int,
    max_redemptions: int,
    expires_at: datetime | None,
    batch: str,
    acting_user: User | None,
    prefix: str = "",
) -> list[RedemptionCode]:
    """Create `count` codes granting `credits` and/or `plan` for `plan_days` days, each usable
    by `max_redemptions` workspaces until `expires_at`."""
    if not 1 <= count <= MAX_BATCH:
        raise CodeError(f"Create between 1 and {MAX_BATCH:,} codes at a time.")
    try:
        units = to_units(credits) if credits is not None else 0
    except AmountError as exc:
        raise CodeError("The credits must be a number with at most 4 decimal places.") from exc
    if units < 0:
        raise CodeError("The credits cannot be negative.")
    if units == 0 and plan is None:
        raise CodeError("A code must grant credits, a plan, or both.")
    if plan is not None and plan_days < 1:
        raise CodeError("Give the number of days the plan lasts (at least 1).")
    if plan is None:
        plan_days = 0
    if max_redemptions < 1:
        raise CodeError("A code must be usable at least once.")
    if expires_at is not None and expires_at <= timezone.now():
        raise CodeError("The expiry must be in the future.")
    prefix = code_normalise(prefix).strip("-")
    if prefix and not PREFIX_RE.fullmatch(prefix):
        raise CodeError("The prefix may have up to 16 letters and digits.")
    batch = batch.strip()
    for _ in range(3):
        try:
            with transaction.atomic(durable=True):
                codes = RedemptionCode.objects.bulk_create(
                    RedemptionCode(
                        code=code,
                        batch=batch,
                        credit_units=units,
                        plan=plan,
                        plan_days=plan_days,
                        max_redemptions=max_redemptions,
                        expires_at=expires_at,
                        created_by=acting_user,
                    )
                    for code in _new_codes(count, prefix)
                )
                audit_record(
                    actor=acting_user,
                    action="billing.codes_create",
                    metadata={
                        "batch": batch,
                        "count": count,
                        "credits": format_credits(units) if units else "",
                        "plan": plan.code if plan else "",
                        "plan_days": plan_days,
                        "max_redemptions": max_redemptions,
                        "expires_at": expires_at.isoformat() if expires_at else "",
                    },
                )
        except IntegrityError:  # another batch took one of these codes between check and insert
            continue
        return codes
    raise CodeError("Could not create unique codes; try again.")


def billing_codes_deactivate(*, code_ids: list[int], acting_user: User | None) -> int:
    """Stop the given codes from being redeemed (redemptions already made stay). Returns how
    many were active."""
    with transaction.atomic(durable=True):
        codes = list(RedemptionCode.objects.filter(pk__in=code_ids, is_active=True).values_list("code", flat=True))
        RedemptionCode.objects.filter(pk__in=code_ids, is_active=True).update(is_active=False)
        if codes:
            audit_record(
                actor=acting_user,
                action="billing.codes_deactivate",
                metadata={"count": len(codes), "codes": codes[:100]},
            )
    return len(codes)


def _refusal(code: RedemptionCode, workspace: Workspace, now: datetime) -> str | None:
    if not code.is_active:
        return "This code is no longer active."
    if code.expires_at is not None and code.expires_at <= now:
        return "This code has expired."
    if Redemption.objects.filter(code=code, workspace=workspace).exists():
        return "This code has already been redeemed in this workspace."
    if code.redeemed_count >= code.max_redemptions:
        return "This code has already been used."
    return None


@transaction.atomic(durable=True)
def billing_code_redeem(*, workspace: Workspace, acting_user: User, code: str) -> Redemption:
    """Redeem `code` into `workspace` by `acting_user` (a member). Grants its credits and puts
    the workspace on its plan for its days, unless a Stripe subscription holds the plan (then
    only the credits are granted, and a plan-only code is refused)."""
    if membership_for(workspace=workspace, user=acting_user) is None:
        raise CodeError("You are not a member of this workspace.")
    normalised = code_normalise(code)
    if not normalised:
        raise CodeError("Enter a code.")
    # Serialises redemptions of one code: two workspaces taking the last use of a code at once,
    # or one workspace redeeming it twice at once, are decided one after the other.
    found = (
        RedemptionCode.objects.select_for_update(of=("self",))
        .select_related("plan")
        .annotate(upper=Upper("code"))
        .filter(upper=normalised)
        .first()
    )
    if found is None:
        raise CodeError("This code does not exist. Check it and try again.")
    now = timezone.now()
    refusal = _refusal(found, workspace, now)
    if refusal:
        raise CodeError(refusal)
    account = account_for_workspace(workspace.pk, lock=True)
    plan = found.plan
    plan_applies = plan is not None and not account.has_subscription
    if plan is not None and not plan_applies and found.credit_units <= 0:
        raise CodeError(
            f"This workspace pays for its plan with a subscription, so this code's plan ({plan.name}) "
            "cannot be applied. Redeem it in another workspace or cancel the subscription first."
        )
    # The lock already makes this check-then-increment safe; the condition also keeps the count
    # within bounds where the lock is not taken (SQLite ignores select_for_update).
    taken = RedemptionCode.objects.filter(pk=found.pk, redeemed_count__lt=F("max_redemptions")).update(
        redeemed_count=F("redeemed_count") + 1
    )
    if not taken:
        raise CodeError("This code has already been used.")
    try:
        with transaction.atomic():
            redemption = Redemption.objects.create(code=found, workspace=workspace, user=acting_user, created_at=now)
    except IntegrityError as exc:
        raise CodeError("This code has already been redeemed in this workspace.") from exc
    key = f"redeem:{found.pk}:{workspace.pk}"
    grant = None
    if found.credit_units > 0:
        grant = credits_grant(
            workspace=workspace,
            amount=to_credits(found.credit_units),
            source=Source.BONUS,
            idempotency_key=key,
            reference=found.code,
            reason=f"Redemption code {found.code}",
            acting_user=acting_user,
        )
        redemption.grant = grant
        redemption.save(update_fields=["grant"])
    plan_until = None
    if plan is not None and plan_applies:
        assigned = billing_plan_assign(
            workspace=workspace,
            plan=plan,
            acting_user=acting_user,
            days=found.plan_days,
            source=PlanSource.CODE,
            reason=f"Redemption code {found.code}",
        )
        plan_until = assigned.plan_expires_at
    parts = [f"{format_credits(found.credit_units)} credits"] if grant is not None else []
    if plan_until is not None and plan is not None:
        parts.append(f"{plan.name} for {found.plan_days} days")
    Fulfilment.objects.create(
        workspace=workspace,
        key=key,
        kind=Fulfilment.Kind.REDEMPTION,
        credit_units=found.credit_units if grant is not None else 0,
        description=f"Code {found.code}: {' and '.join(parts)}"[:255],
        period_start=now if plan_until else None,
        period_end=plan_until,
        grant=grant,
        created_at=now,
    )
    audit_record(
        actor=acting_user,
        action="billing.code_redeem",
        target=found,
        workspace=workspace,
        metadata={
            "code": found.code,
            "batch": found.batch,
            "credit_units": found.credit_units,
            "plan": plan.code if plan else "",
            "plan_days": found.plan_days,
            "plan_applied": plan_until is not None,
        },
    )
    return redemption
