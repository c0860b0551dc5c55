"""Every write to credits. Each public service is one short transaction that takes the
workspace's account row lock first (the one lock order: account, then its grants and
reservations), so concurrent requests can never overdraw a workspace and each reservation
ends exactly once. No provider call ever runs inside these transactions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, models, transaction
from django.db.models import F, Q, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from apps.audit.services import audit_record
from apps.credits.amounts import AmountError, to_units
from apps.credits.exceptions import CreditsError, InsufficientCredits, SpendingCapReached
from apps.credits.models import (
    SOURCE_ORDER,
    CreditAccount,
    CreditGrant,
    EntryKind,
    LedgerEntry,
    RateCard,
    Reservation,
    Source,
)

if TYPE_CHECKING:
    from decimal import Decimal

    from apps.accounts.models import User
    from apps.workspaces.models import Workspace


def _units(amount: Decimal | int | str, *, allow_zero: bool = False, allow_negative: bool = False) -> int:
    try:
        units = to_units(amount)
    except AmountError as exc:
        raise CreditsError(str(exc)) from exc
    if units < 0 and not allow_negative:
        raise CreditsError("The amount cannot be negative.")
    if units == 0 and not allow_zero:
        raise CreditsError("The amount must be greater than zero.")
    return units


def _related(obj: models.Model | None) -> dict[str, str]:
    if obj is None:
        return {"related_type": "", "related_id": ""}
    return {"related_type": obj._meta.label_lower, "related_id": str(obj.pk)}


# ---------------------------------------------------------------------------- accounts & locks


def credits_account_open(*, workspace: Workspace) -> CreditAccount:
    """The workspace's account, created on first use with the configured alert thresholds."""
    account = CreditAccount.objects.filter(workspace=workspace).first()
    if account is not None:
        return account
    from constance import config

    thresholds = _parse_thresholds(config.LOW_BALANCE_THRESHOLDS)
    try:
        with transaction.atomic():
            return CreditAccount.objects.create(workspace=workspace, alert_thresholds=thresholds)
    except IntegrityError:
        return CreditAccount.objects.get(workspace=workspace)


def _parse_thresholds(text: str) -> list[int]:
    values = []
    for part in str(text).split(","):
        part = part.strip()
        if part:
            try:
                values.append(to_units(part))
            except AmountError:
                continue
    return sorted({v for v in values if v > 0}, reverse=True)


def account_lock(workspace: Workspace | int) -> CreditAccount:
    """Lock and return the workspace's account row. Every balance change holds this lock, so a
    workspace's changes are serialised (the race it prevents: two requests both seeing enough
    credits and together overdrawing)."""
    workspace_id = workspace if isinstance(workspace, int) else workspace.pk
    account = CreditAccount.objects.select_for_update().filter(workspace_id=workspace_id).first()
    if account is None:
        from apps.workspaces.models import Workspace as WorkspaceModel

        credits_account_open(workspace=WorkspaceModel.objects.get(pk=workspace_id))
        account = CreditAccount.objects.select_for_update().get(workspace_id=workspace_id)
    return account


def _expire_due(account: CreditAccount, now: datetime) -> int:
    """Expire the free part of every grant past its expiry (the held part expires when its
    reservation ends), writing entries and projections. Returns the units expired. Caller holds
    the account lock; cheap when nothing is due (one comparison)."""
    if account.next_expiry_at is None or account.next_expiry_at > now:
        return 0
    expired_total = 0
    entries: list[LedgerEntry] = []
    due = CreditGrant.objects.filter(account=account, expires_at__lte=now, balance_units__gt=F("held_units"))
    for grant in due:
        free = grant.balance_units - grant.held_units
        CreditGrant.objects.filter(pk=grant.pk).update(
            balance_units=F("balance_units") - free,
            expired_at=now if grant.held_units == 0 else None,
        )
        entries.append(
            LedgerEntry(
                workspace_id=account.workspace_id,
                account=account,
                grant=grant,
                kind=EntryKind.EXPIRE,
                amount_units=-free,
                idempotency_key=f"expire:{grant.pk}:{grant.balance_units}:{grant.held_units}:{now.isoformat()}",
                metadata={"expires_at": grant.expires_at.isoformat() if grant.expires_at else None},
            )
        )
        expired_total += free
    account.balance_units -= expired_total
    account.next_expiry_at = (
        CreditGrant.objects.filter(account=account, expires_at__gt=now, balance_units__gt=0)
        .order_by("expires_at")
        .values_list("expires_at", flat=True)
        .first()
    )
    _write(entries)
    CreditAccount.objects.filter(pk=account.pk).update(
        balance_units=F("balance_units") - expired_total, next_expiry_at=account.next_expiry_at
    )
    return expired_total


def _consumption_order(account: CreditAccount, now: datetime) -> models.QuerySet[CreditGrant]:
    # Soonest-expiring first; never-expiring (purchased) last; ties by source then age.
    return (
        CreditGrant.objects.filter(account=account, balance_units__gt=F("held_units"))
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .order_by(F("expires_at").asc(nulls_last=True), "source_rank", "id")
    )


def _save_account(account: CreditAccount, *, balance_delta: int, held_delta: int, now: datetime) -> None:
    account.balance_units += balance_delta
    account.held_units += held_delta
    level = _alert_level(account)
    # Alert once per downward crossing caused by spending; a grant that leaves the balance
    # below a threshold is not news to anyone, and a rise above re-arms the threshold.
    spending = balance_delta < 0 or held_delta > 0
    if spending and level > account.alert_level:
        threshold = account.alert_thresholds[level - 1]
        transaction.on_commit(lambda: _notify_low_balance(account.pk, threshold))
    account.alert_level = level
    CreditAccount.objects.filter(pk=account.pk).update(
        balance_units=F("balance_units") + balance_delta,
        held_units=F("held_units") + held_delta,
        next_expiry_at=account.next_expiry_at,
        alert_level=level,
        updated_at=now,
    )


def _alert_level(account: CreditAccount) -> int:
    available = account.available_units
    return sum(1 for t in account.alert_thresholds if available < t)


def _notify_low_balance(account_id: int, threshold_units: int) -> None:
    from apps.credits.tasks import send_low_balance_alert

    send_low_balance_alert.delay(account_id, threshold_units)


def _write(entries: list[LedgerEntry]) -> None:
    if entries:
        LedgerEntry.objects.bulk_create(entries)


# ---------------------------------------------------------------------------- grants


def _grant_in_lock(
    account: CreditAccount,
    *,
    units: int,
    source: str,
    idempotency_key: str,
    kind: str,
    expires_at: datetime | None,
    reference: str,
    reason: str,
    actor: User | None,
    now: datetime,
    metadata: dict[str, Any] | None = None,
) -> CreditGrant:
    grant = CreditGrant.objects.create(
        workspace_id=account.workspace_id,
        account=account,
        source=source,
        source_rank=SOURCE_ORDER.get(source, 9),
        amount_units=units,
        balance_units=units,
        expires_at=expires_at,
        reference=reference[:200],
        reason=reason[:500],
        idempotency_key=idempotency_key,
        created_by=actor if actor is not None and actor.pk else None,
    )
    if expires_at is not None and (account.next_expiry_at is None or expires_at < account.next_expiry_at):
        account.next_expiry_at = expires_at
    _write(
        [
            LedgerEntry(
                workspace_id=account.workspace_id,
                account=account,
                grant=grant,
                kind=kind,
                amount_units=units,
                idempotency_key=f"{kind}:{idempotency_key}",
                actor=grant.created_by,
                metadata={"source": source, "reference": reference, "reason": reason, **(metadata or {})},
            )
        ]
    )
    _save_account(account, balance_delta=units, held_delta=0, now=now)
    return grant


@transaction.atomic
def credits_grant(
    *,
    workspace: Workspace,
    amount: Decimal | int | str,
    source: str,
    idempotency_key: str,
    expires_at: datetime | None = None,
    reference: str = "",
    reason: str = "",
    actor: User | None = None,
) -> CreditGrant:
    """Add a bucket of credits. Replaying the same key returns the first grant unchanged."""
    if source not in Source.values:
        raise CreditsError(f"Unknown credit source: {source}.")
    units = _units(amount)
    now = timezone.now()
    if expires_at is not None and expires_at <= now:
        raise CreditsError("The expiry must be in the future.")
    account = account_lock(workspace)
    existing = CreditGrant.objects.filter(idempotency_key=idempotency_key).first()
    if existing is not None:
        return existing
    grant = _grant_in_lock(
        account,
        units=units,
        source=source,
        idempotency_key=idempotency_key,
        kind=EntryKind.GRANT,
        expires_at=expires_at,
        reference=reference,
        reason=reason,
        actor=actor,
        now=now,
    )
    if actor is not None:
        audit_record(
            actor=actor,
            action="credits.grant",
            target=grant,
            workspace=workspace,
            metadata={"amount": str(amount), "source": source, "reason": reason, "reference": reference},
        )
    return grant


def credits_grant_trial(*, workspace: Workspace) -> CreditGrant | None:
    """The configured trial credits for a new workspace (once per workspace)."""
    from constance import config

    amount = str(config.TRIAL_CREDITS).strip()
    if not amount or to_units(amount) <= 0:
        credits_account_open(workspace=workspace)
        return None
    days = int(config.TRIAL_DAYS)
    expires_at = timezone.now() + timedelta(days=days) if days > 0 else None
    return credits_grant(
        workspace=workspace,
        amount=amount,
        source=Source.TRIAL,
        idempotency_key=f"trial:{workspace.pk}",
        expires_at=expires_at,
        reason="Trial credits for a new workspace",
    )


# ---------------------------------------------------------------------------- reservations


def _spent_since(account: CreditAccount, since: datetime, *, user: User | None = None) -> int:
    """Charged plus still-held credits since `since` (held counts, so parallel calls cannot
    slip past a cap together)."""
    qs = Reservation.objects.filter(account=account, created_at__gte=since)
    if user is not None:
        qs = qs.filter(user=user)
    totals = qs.aggregate(
        charged=Coalesce(Sum("charged_units", filter=Q(status=Reservation.Status.SETTLED)), 0),
        held=Coalesce(Sum("amount_units", filter=Q(status=Reservation.Status.HELD)), 0),
    )
    return int(totals["charged"]) + int(totals["held"])


def _check_caps(account: CreditAccount, units: int, user: User | None, now: datetime) -> None:
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    month_start = day_start.replace(day=1)
    caps: list[tuple[str, int | None, datetime, User | None]] = [
        ("daily", account.daily_cap_units, day_start, None),
        ("monthly", account.monthly_cap_units, month_start, None),
    ]
    if user is not None:
        caps += [
            ("member daily", account.member_daily_cap_units, day_start, user),
            ("member monthly", account.member_monthly_cap_units, month_start, user),
        ]
    for name, limit, since, who in caps:
        if limit is None:
            continue
        spent = _spent_since(account, since, user=who)
        if spent + units > limit:
            raise SpendingCapReached(cap=name, limit_units=limit, spent_units=spent, requested_units=units)


@transaction.atomic
def credits_reserve(
    *,
    workspace: Workspace,
    amount: Decimal | int | str | None = None,
    units: int | None = None,
    idempotency_key: str,
    user: User | None = None,
    service: str = "",
    model: str = "",
    rate_card: RateCard | None = None,
    related: models.Model | None = None,
) -> Reservation:
    """Hold credits for a call, or raise InsufficientCredits / SpendingCapReached. The same key
    returns the existing reservation (whatever its state) and holds nothing more."""
    if units is None:
        if amount is None:
            raise CreditsError("Give an amount to reserve.")
        units = _units(amount)
    elif units <= 0:
        raise CreditsError("The amount must be greater than zero.")
    existing = Reservation.objects.filter(idempotency_key=idempotency_key).first()
    if existing is not None:
        return existing
    now = timezone.now()
    account = account_lock(workspace)
    existing = Reservation.objects.filter(idempotency_key=idempotency_key).first()
    if existing is not None:  # a concurrent twin committed while we waited for the lock
        return existing
    _expire_due(account, now)
    if account.available_units < units:
        raise InsufficientCredits(available_units=account.available_units, requested_units=units)
    _check_caps(account, units, user, now)
    allocations: dict[str, int] = {}
    remaining = units
    for grant in _consumption_order(account, now):
        take = min(remaining, grant.available_units)
        CreditGrant.objects.filter(pk=grant.pk).update(held_units=F("held_units") + take)
        allocations[str(grant.pk)] = take
        remaining -= take
        if remaining == 0:
            break
    if remaining:  # projections out of step with grants: refuse rather than overdraw
        raise CreditsError("Credit balance is inconsistent; run `credits reconcile`.")
    reservation = Reservation.objects.create(
        workspace_id=account.workspace_id,
        account=account,
        user=user if user is not None and user.pk else None,
        idempotency_key=idempotency_key,
        service=service,
        model=model,
        rate_card=rate_card,
        amount_units=units,
        allocations=allocations,
        created_at=now,
        **_related(related),
    )
    entries = [
        LedgerEntry(
            workspace_id=account.workspace_id,
            account=account,
            grant_id=int(grant_id),
            reservation=reservation,
            kind=EntryKind.RESERVE,
            held_units=take,
            idempotency_key=f"reserve:{idempotency_key}:{grant_id}",
            actor=reservation.user,
            created_at=now,
        )
        for grant_id, take in allocations.items()
    ]
    _write(entries)
    _save_account(account, balance_delta=0, held_delta=units, now=now)
    return reservation


def _finish(reservation_id: int, *, charge_units: int | None, usage: dict[str, Any] | None, reason: str) -> Reservation:
    reservation = Reservation.objects.only("account_id", "workspace_id").get(pk=reservation_id)
    now = timezone.now()
    account = account_lock(reservation.workspace_id)
    # Reloaded under the lock: every state change of this reservation holds the same lock.
    reservation = Reservation.objects.get(pk=reservation_id)
    if reservation.status != Reservation.Status.HELD:
        return reservation  # ended already: the first outcome stands
    _expire_due(account, now)
    entries: list[LedgerEntry] = []
    key = reservation.idempotency_key
    to_charge = 0 if charge_units is None else charge_units
    charged = 0
    balance_delta = 0
    grant_ids = [int(g) for g in reservation.allocations]
    grants = {g.pk: g for g in CreditGrant.objects.filter(pk__in=grant_ids)}
    for grant_id in grant_ids:
        held = reservation.allocations[str(grant_id)]
        grant = grants[grant_id]
        charge = min(to_charge - charged, held)
        unused = held - charge
        lapsed = unused if grant.expires_at is not None and grant.expires_at <= now else 0
        CreditGrant.objects.filter(pk=grant_id).update(
            balance_units=F("balance_units") - charge - lapsed,
            held_units=F("held_units") - held,
            expired_at=now if lapsed and grant.held_units == held else grant.expired_at,
        )
        if charge:
            entries.append(
                LedgerEntry(
                    workspace_id=account.workspace_id,
                    account=account,
                    grant_id=grant_id,
                    reservation=reservation,
                    kind=EntryKind.SETTLE,
                    amount_units=-charge,
                    held_units=-charge,
                    idempotency_key=f"settle:{key}:{grant_id}",
                    created_at=now,
                )
            )
        if unused:
            entries.append(
                LedgerEntry(
                    workspace_id=account.workspace_id,
                    account=account,
                    grant_id=grant_id,
                    reservation=reservation,
                    kind=EntryKind.RELEASE,
                    held_units=-unused,
                    idempotency_key=f"release:{key}:{grant_id}",
                    created_at=now,
                )
            )
        if lapsed:
            entries.append(
                LedgerEntry(
                    workspace_id=account.workspace_id,
                    account=account,
                    grant_id=grant_id,
                    reservation=reservation,
                    kind=EntryKind.EXPIRE,
                    amount_units=-lapsed,
                    idempotency_key=f"expire:{key}:{grant_id}",
                    metadata={"expires_at": grant.expires_at.isoformat() if grant.expires_at else None},
                    created_at=now,
                )
            )
        charged += charge
        balance_delta -= charge + lapsed
    # The actual cost exceeded the hold: charge the excess from what is available, and record
    # any remainder as an explicit shortfall (the balance never goes negative).
    excess = to_charge - charged
    shortfall = 0
    if excess > 0:
        # What is spendable once this hold is gone: the balance after the charges above, less
        # the holds of other reservations.
        available_after = (account.balance_units + balance_delta) - (account.held_units - reservation.amount_units)
        extra_total = 0
        for grant in _consumption_order(account, now):
            if extra_total >= min(excess, available_after):
                break
            # The query ran after the updates above, so these figures are current.
            take = min(excess - extra_total, grant.available_units, available_after - extra_total)
            if take <= 0:
                continue
            CreditGrant.objects.filter(pk=grant.pk).update(balance_units=F("balance_units") - take)
            entries.append(
                LedgerEntry(
                    workspace_id=account.workspace_id,
                    account=account,
                    grant=grant,
                    reservation=reservation,
                    kind=EntryKind.SETTLE,
                    amount_units=-take,
                    idempotency_key=f"settle-excess:{key}:{grant.pk}",
                    created_at=now,
                )
            )
            extra_total += take
        charged += extra_total
        balance_delta -= extra_total
        shortfall = excess - extra_total
    _write(entries)
    _save_account(account, balance_delta=balance_delta, held_delta=-reservation.amount_units, now=now)
    reservation.status = Reservation.Status.RELEASED if charge_units is None else Reservation.Status.SETTLED
    reservation.charged_units = charged
    reservation.shortfall_units = shortfall
    reservation.usage = usage or reservation.usage
    reservation.outcome_reason = reason[:200]
    reservation.finished_at = now
    reservation.save(
        update_fields=["status", "charged_units", "shortfall_units", "usage", "outcome_reason", "finished_at"]
    )
    return reservation


@transaction.atomic
def credits_settle(
    *,
    reservation: Reservation,
    actual: Decimal | int | str | None = None,
    actual_units: int | None = None,
    usage: dict[str, Any] | None = None,
    reason: str = "",
) -> Reservation:
    """Charge the actual cost and release the rest of the hold. Ends the reservation once:
    a second settle or a release after it returns the first outcome unchanged."""
    if actual_units is None:
        actual_units = _units(actual if actual is not None else 0, allow_zero=True)
    elif actual_units < 0:
        raise CreditsError("The amount cannot be negative.")
    return _finish(reservation.pk, charge_units=actual_units, usage=usage, reason=reason)


@transaction.atomic
def credits_release(*, reservation: Reservation, reason: str = "") -> Reservation:
    """Return the whole hold. A no-op returning the first outcome if the reservation ended."""
    return _finish(reservation.pk, charge_units=None, usage=None, reason=reason)


def credits_checkpoint(*, reservation: Reservation, delivered_units: int) -> None:
    """Record the cost delivered so far, so a sweeper can settle it if the caller dies."""
    Reservation.objects.filter(pk=reservation.pk, status=Reservation.Status.HELD).update(
        checkpoint_units=max(delivered_units, 0)
    )


def credits_sweep(*, older_than: timedelta, now: datetime | None = None) -> dict[str, int]:
    """End holds older than `older_than`: settle what was checkpointed as delivered, release
    the rest. Each ends in its own transaction; a hold ended meanwhile is left as it is."""
    now = now or timezone.now()
    stale = Reservation.objects.held().filter(created_at__lt=now - older_than).values_list("pk", "checkpoint_units")
    counts = {"settled": 0, "released": 0}
    for pk, checkpoint in list(stale.iterator()):
        with transaction.atomic():
            reservation = _finish(
                pk,
                charge_units=checkpoint if checkpoint > 0 else None,
                usage=None,
                reason="swept: stale hold",
            )
        if reservation.outcome_reason == "swept: stale hold":
            counts["settled" if reservation.status == Reservation.Status.SETTLED else "released"] += 1
    return counts


def credits_expire(*, now: datetime | None = None) -> int:
    """Apply due expiries for every account (the periodic task). Returns units expired."""
    now = now or timezone.now()
    total = 0
    account_ids = CreditAccount.objects.filter(next_expiry_at__lte=now).values_list("workspace_id", flat=True)
    for workspace_id in list(account_ids):
        with transaction.atomic():
            account = account_lock(workspace_id)
            total += _expire_due(account, now)
            _save_account(account, balance_delta=0, held_delta=0, now=now)  # alert level
    return total


# ---------------------------------------------------------------------------- staff & billing


def _take_available(
    account: CreditAccount,
    *,
    units: int,
    kind: str,
    key: str,
    now: datetime,
    actor: User | None,
    metadata: dict[str, Any],
    entries: list[LedgerEntry],
) -> int:
    """Remove up to `units` from available credits in consumption order; returns units taken."""
    taken = 0
    for grant in _consumption_order(account, now):
        take = min(units - taken, grant.available_units)
        if take <= 0:
            break
        CreditGrant.objects.filter(pk=grant.pk).update(balance_units=F("balance_units") - take)
        entries.append(
            LedgerEntry(
                workspace_id=account.workspace_id,
                account=account,
                grant=grant,
                kind=kind,
                amount_units=-take,
                idempotency_key=f"{kind}:{key}:{grant.pk}",
                actor=actor,
                metadata=metadata,
                created_at=now,
            )
        )
        taken += take
        if taken == units:
            break
    return taken


@transaction.atomic
def credits_adjust(
    *,
    workspace: Workspace,
    amount: Decimal | int | str,
    reason: str,
    acting_user: User,
    idempotency_key: str,
    expires_at: datetime | None = None,
) -> int:
    """Staff correction. Positive adds a bonus grant; negative removes available credits
    (refused if the workspace has less available). Returns the signed units applied."""
    reason = reason.strip()
    if not reason:
        raise CreditsError("Give a reason for the adjustment.")
    units = _units(amount, allow_negative=True)
    now = timezone.now()
    account = account_lock(workspace)
    if LedgerEntry.objects.filter(idempotency_key__startswith=f"adjust:{idempotency_key}").exists():
        return 0
    _expire_due(account, now)
    metadata = {"reason": reason}
    if units > 0:
        _grant_in_lock(
            account,
            units=units,
            source=Source.BONUS,
            idempotency_key=idempotency_key,
            kind=EntryKind.ADJUST,
            expires_at=expires_at,
            reference="staff adjustment",
            reason=reason,
            actor=acting_user,
            now=now,
        )
    else:
        if account.available_units < -units:
            raise InsufficientCredits(available_units=account.available_units, requested_units=-units)
        entries: list[LedgerEntry] = []
        taken = _take_available(
            account,
            units=-units,
            kind=EntryKind.ADJUST,
            key=idempotency_key,
            now=now,
            actor=acting_user,
            metadata=metadata,
            entries=entries,
        )
        _write(entries)
        _save_account(account, balance_delta=-taken, held_delta=0, now=now)
    audit_record(
        actor=acting_user,
        action="credits.adjust",
        target=account,
        workspace=workspace,
        metadata={"amount": str(amount), "reason": reason},
    )
    return units


@dataclass(frozen=True)
class Clawback:
    clawed_units: int
    shortfall_units: int


@transaction.atomic
def credits_clawback(
    *,
    workspace: Workspace,
    amount: Decimal | int | str,
    idempotency_key: str,
    reason: str,
    reference: str = "",
    actor: User | None = None,
) -> Clawback:
    """Take back credits (refunded payment, dispute). Takes what is available and records the
    rest as a shortfall: the balance never goes negative. Replays change nothing."""
    units = _units(amount)
    now = timezone.now()
    account = account_lock(workspace)
    previous = LedgerEntry.objects.filter(idempotency_key=f"clawback-record:{idempotency_key}").first()
    if previous is not None:
        return Clawback(previous.metadata["clawed_units"], previous.metadata["shortfall_units"])
    _expire_due(account, now)
    entries: list[LedgerEntry] = []
    metadata = {"reason": reason, "reference": reference}
    taken = _take_available(
        account,
        units=units,
        kind=EntryKind.CLAWBACK,
        key=idempotency_key,
        now=now,
        actor=actor,
        metadata=metadata,
        entries=entries,
    )
    result = Clawback(taken, units - taken)
    entries.append(
        LedgerEntry(
            workspace_id=account.workspace_id,
            account=account,
            kind=EntryKind.CLAWBACK,
            idempotency_key=f"clawback-record:{idempotency_key}",
            actor=actor,
            metadata={**metadata, "requested_units": units, "clawed_units": taken, "shortfall_units": units - taken},
            created_at=now,
        )
    )
    _write(entries)
    _save_account(account, balance_delta=-taken, held_delta=0, now=now)
    return result


@transaction.atomic
def credits_refund(
    *,
    workspace: Workspace,
    amount: Decimal | int | str,
    idempotency_key: str,
    reason: str,
    source: str = Source.BONUS,
    reference: str = "",
    actor: User | None = None,
) -> CreditGrant:
    """Give credits back (e.g. a failed job settled earlier) as a new grant."""
    units = _units(amount)
    now = timezone.now()
    account = account_lock(workspace)
    existing = CreditGrant.objects.filter(idempotency_key=idempotency_key).first()
    if existing is not None:
        return existing
    return _grant_in_lock(
        account,
        units=units,
        source=source,
        idempotency_key=idempotency_key,
        kind=EntryKind.REFUND,
        expires_at=None,
        reference=reference,
        reason=reason,
        actor=actor,
        now=now,
    )
