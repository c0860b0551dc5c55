"""Every write to credits. Each public service is one short transaction that takes the
workspace's account row lock first (the one lock order: account, then its grants and
reservations), so concurrent requests can never overdraw a workspace and each reservation
ends exactly once. No provider call ever runs inside these transactions.

Under the lock a service reads what it needs, decides in Python, and stages its writes in a
`_Writes`, sent at the end as one statement on PostgreSQL: the hot account row of a busy
workspace stays locked for a few round trips (see bench/README.md).

Transactions: what only staff and the periodic tasks start (`credits_adjust`, each account of
`credits_sweep`, `credits_expire` and `credits_reconcile --fix`) is durable, never nested in a
caller's transaction. What runs only inside a caller's transaction (a Stripe event's clawback
and refund, billing's watched level) joins it (`savepoint=False`). The rest (grant, reserve,
settle, release) is called both ways — on its own, or inside a new workspace's transaction, a
Stripe event's fulfilment, a media job's creation and end — and keeps a savepoint when nested,
so a caller can recover from a refusal (`credits_reserve` recovers from a twin's committed key).
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from django.db import IntegrityError, connection, models, transaction
from django.db.models import F, OuterRef, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from apps.audit.services import audit_record
from apps.core.events import send_on_commit
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
from apps.credits.signals import LOW_BALANCE, balance_crossed_level, charge_settled, grant_added

if TYPE_CHECKING:
    from decimal import Decimal

    from apps.accounts.models import User
    from apps.workspaces.models import Workspace

logger = logging.getLogger(__name__)
M = TypeVar("M", bound=models.Model)

# Keys are stored with a prefix and a grant id in `LedgerEntry.idempotency_key` (220 chars).
MAX_KEY_LENGTH = 180


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


def _raw_units(units: int, *, allow_zero: bool = False) -> int:
    if isinstance(units, bool) or not isinstance(units, int):
        raise CreditsError("Units must be an integer.")
    if units < 0 or (units == 0 and not allow_zero):
        raise CreditsError("The amount must be greater than zero." if units == 0 else "The amount cannot be negative.")
    return units


def _key(idempotency_key: str) -> str:
    key = str(idempotency_key)
    if not key or len(key) > MAX_KEY_LENGTH:
        raise CreditsError(f"An idempotency key must have 1 to {MAX_KEY_LENGTH} characters.")
    return key


def _same_workspace(obj: CreditGrant | Reservation | LedgerEntry, workspace_id: int) -> None:
    # Keys are global: a key reused for another workspace is a caller bug, never a replay.
    if obj.workspace_id != workspace_id:
        raise CreditsError("This idempotency key was already used for another workspace.")


def _workspace_id(workspace: Workspace | int) -> int:
    return workspace if isinstance(workspace, int) else workspace.pk


def _one(queryset: models.QuerySet[M]) -> M | None:
    """The row of a query that matches at most one (a unique key), without the ORDER BY that
    `.first()` adds."""
    return next(iter(queryset.order_by()[:1]), None)


def _select(model: type[M], where: str, params: list[Any], *, for_update: bool = False) -> list[M]:
    """Rows of `model` matching `where`, through a raw query. Used on the reserve/settle path
    only, where compiling an ORM query costs more CPU than PostgreSQL spends answering it."""
    sql = f"SELECT * FROM {_table(model)} WHERE {where}"  # noqa: S608 (identifiers from model metadata)
    if for_update and connection.features.has_select_for_update:
        sql += " FOR UPDATE"
    return list(model._default_manager.raw(sql, params))


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


@transaction.atomic(savepoint=False)
def credits_watch_set(*, workspace: Workspace, watch: str, level_units: int | None) -> CreditAccount:
    """Announce `balance_crossed_level` with this `watch` name each time the workspace's
    available balance drops below `level_units` (None: stop watching). A higher app pushes the
    level it cares about here — billing, its auto top-up threshold — so the ledger never asks it."""
    if not watch or watch == LOW_BALANCE or len(watch) > 40:
        raise CreditsError(f"Not a name for a watched level: {watch!r}.")
    if level_units is not None:
        level_units = _raw_units(level_units)
    # Under the account lock: a charge compares against the old level or the new, never neither.
    account = account_lock(workspace)
    levels = dict(account.watch_levels)
    if level_units is None:
        levels.pop(watch, None)
    else:
        levels[watch] = level_units
    if levels != account.watch_levels:
        # An UPDATE of this column only, never `save()`: the balance columns change only
        # through the ledger's own writes.
        CreditAccount.objects.filter(pk=account.pk).update(watch_levels=levels, updated_at=timezone.now())
        account.watch_levels = levels
    return account


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
    workspace_id = _workspace_id(workspace)
    found = _select(CreditAccount, "workspace_id = %s", [workspace_id], for_update=True)
    account = found[0] if found else None
    if account is None:
        from apps.workspaces.models import Workspace as WorkspaceModel

        credits_account_open(workspace=WorkspaceModel.objects.get(pk=workspace_id))
        account = CreditAccount.objects.select_for_update().get(workspace_id=workspace_id)
    return account


# ---------------------------------------------------------------------------- staged writes


class _Writes:
    """The writes of one service call, staged while it decides under the account lock and then
    sent together by `flush()`: on PostgreSQL as one statement (data-modifying CTEs), so the
    hot account row stays locked for one round trip instead of one per table; elsewhere as one
    ORM statement per table. Both apply exactly the same changes:

    - an optional guarded end of a reservation (`end`): the status moves on from held only if
      it is still held; if not, nothing at all is written and `flush()` returns False;
    - an optional new reservation (entries may point at it before it has an id);
    - per-grant deltas to `balance_units` / `held_units` (and `expired_at` when set);
    - ledger entries;
    - the account's deltas, alert level, next expiry and `updated_at`.
    """

    def __init__(self, account: CreditAccount, now: datetime) -> None:
        self.account = account
        self.now = now
        self.balance_delta = 0
        self.held_delta = 0
        self.grants: dict[int, list[Any]] = {}  # pk -> [balance delta, held delta, expired_at]
        self.entries: list[LedgerEntry] = []
        self.new_reservation: Reservation | None = None
        self.end: tuple[int, dict[str, Any]] | None = None
        self.alert_threshold: int | None = None  # a low-balance threshold this call crosses
        self.new_grants: list[CreditGrant] = []

    def grant(self, pk: int, *, balance: int = 0, held: int = 0, expired_at: datetime | None = None) -> None:
        """Stage deltas to a grant. `expired_at` (for a grant past its expiry) is recorded if no
        hold is left on the grant once the deltas apply."""
        delta = self.grants.setdefault(pk, [0, 0, None])
        delta[0] += balance
        delta[1] += held
        if expired_at is not None:
            delta[2] = expired_at

    def entry(self, **fields: Any) -> None:
        self.entries.append(
            LedgerEntry(workspace_id=self.account.workspace_id, account=self.account, created_at=self.now, **fields)
        )

    def change_account(self, *, balance: int = 0, held: int = 0) -> None:
        self.account.balance_units += balance
        self.account.held_units += held
        self.balance_delta += balance
        self.held_delta += held

    def flush(self) -> bool:
        written = self._flush_postgresql() if connection.vendor == "postgresql" else self._flush_orm()
        if written:
            # Only a change that was written (and commits) is announced.
            self._announce()
        return written

    def _announce(self) -> None:
        account = self.account
        after = account.available_units
        crossings: list[tuple[str, int]] = []
        if self.alert_threshold is not None:
            crossings.append((LOW_BALANCE, self.alert_threshold))
        # A watched level is crossed when this call takes the available balance from at or
        # above it to below it: one announcement per downward crossing.
        before = after - (self.balance_delta - self.held_delta)
        crossings += [(watch, level) for watch, level in account.watch_levels.items() if before >= level > after]
        for watch, level in crossings:
            crossing = {"watch": watch, "level_units": level, "available_units": after}
            send_on_commit(balance_crossed_level, sender=CreditAccount, account=account, **crossing)
        for grant in self.new_grants:
            send_on_commit(grant_added, sender=CreditAccount, grant=grant)

    def _flush_orm(self) -> bool:
        if self.end is not None:
            pk, fields = self.end
            if not Reservation.objects.filter(pk=pk, status=Reservation.Status.HELD).update(**fields):
                return False
        if self.new_reservation is not None:
            self.new_reservation.save(force_insert=True)
        for pk, (balance, held, expired_at) in self.grants.items():
            values: dict[str, Any] = {
                "balance_units": F("balance_units") + balance,
                "held_units": F("held_units") + held,
            }
            if expired_at is not None:  # see `grant()`
                values["expired_at"] = models.Case(
                    models.When(held_units=-held, then=Value(expired_at)), default=F("expired_at")
                )
            CreditGrant.objects.filter(pk=pk).update(**values)
        if self.entries:
            LedgerEntry.objects.bulk_create(self.entries)
        CreditAccount.objects.filter(pk=self.account.pk).update(
            balance_units=F("balance_units") + self.balance_delta,
            held_units=F("held_units") + self.held_delta,
            alert_level=self.account.alert_level,
            next_expiry_at=self.account.next_expiry_at,
            updated_at=self.now,
        )
        return True

    def _flush_postgresql(self) -> bool:
        ctes: list[str] = []
        params: list[Any] = []
        # Every later write is conditional on the guarded end, so a reservation that already
        # ended leaves the ledger untouched.
        condition = "TRUE"
        if self.end is not None:
            pk, fields = self.end
            names = list(fields)
            ctes.append(
                f"guard AS (UPDATE {_table(Reservation)} SET "  # noqa: S608
                + ", ".join(f"{_col(Reservation, n)} = {_cast(Reservation, n)}" for n in names)
                + " WHERE id = %s AND status = %s RETURNING id)"
            )
            params += [_db_value(Reservation, n, fields[n]) for n in names] + [pk, Reservation.Status.HELD]
            condition = "EXISTS (SELECT 1 FROM guard)"
        result = "SELECT 1" if self.end is None else "SELECT count(*) FROM guard"
        if self.new_reservation is not None:
            fields_, values = _insert_row(self.new_reservation)
            ctes.append(
                f"new_reservation AS (INSERT INTO {_table(Reservation)} ({', '.join(fields_)}) "  # noqa: S608
                f"VALUES ({', '.join(['%s'] * len(values))}) RETURNING id)"
            )
            params += values
            result = "SELECT id FROM new_reservation"
        if self.grants:
            rows = ", ".join(["(%s::bigint, %s::bigint, %s::bigint, %s::timestamptz)"] * len(self.grants))
            ctes.append(
                f"grants AS (UPDATE {_table(CreditGrant)} AS g SET balance_units = g.balance_units + v.db, "  # noqa: S608
                "held_units = g.held_units + v.dh, expired_at = CASE WHEN v.ex IS NOT NULL "
                "AND g.held_units + v.dh = 0 THEN v.ex ELSE g.expired_at END "
                f"FROM (VALUES {rows}) AS v(id, db, dh, ex) WHERE g.id = v.id AND {condition})"
            )
            for pk, (balance, held, expired_at) in self.grants.items():
                params += [pk, balance, held, expired_at]
        if self.entries:
            columns: list[str] = []
            rows_sql: list[str] = []
            for entry in self.entries:
                columns, values = _insert_row(entry)
                placeholders = [f"%s::{_db_type(LedgerEntry, c)}" for c in columns]
                if self.new_reservation is not None and _points_at(entry, self.new_reservation):
                    i = columns.index("reservation_id")
                    placeholders[i] = "(SELECT id FROM new_reservation)"
                    del values[i]
                rows_sql.append(f"({', '.join(placeholders)})")
                params += values
            ctes.append(
                f"entries AS (INSERT INTO {_table(LedgerEntry)} ({', '.join(columns)}) "  # noqa: S608
                f"SELECT * FROM (VALUES {', '.join(rows_sql)}) AS v WHERE {condition})"
            )
        ctes.append(
            f"account AS (UPDATE {_table(CreditAccount)} SET balance_units = balance_units + %s, "  # noqa: S608
            "held_units = held_units + %s, alert_level = %s, next_expiry_at = %s::timestamptz, "
            f"updated_at = %s::timestamptz WHERE id = %s AND {condition})"
        )
        params += [
            self.balance_delta,
            self.held_delta,
            self.account.alert_level,
            self.account.next_expiry_at,
            self.now,
            self.account.pk,
        ]
        with connection.cursor() as cursor:
            cursor.execute(f"WITH {', '.join(ctes)} {result}", params)
            (value,) = cursor.fetchone()
        if self.new_reservation is not None:
            self.new_reservation.pk = value
            self.new_reservation._state.adding = False
            self.new_reservation._state.db = connection.alias
        return bool(value)


def _table(model: type[models.Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _col(model: type[models.Model], name: str) -> str:
    return connection.ops.quote_name(str(model._meta.get_field(name).column))  # type: ignore[union-attr]


@functools.cache
def _db_types(model: type[models.Model], vendor: str) -> dict[str, str]:
    return {str(f.column): str(f.db_type(connection)) for f in model._meta.concrete_fields}


def _db_type(model: type[models.Model], column: str) -> str:
    return _db_types(model, connection.vendor)[column]


def _cast(model: type[models.Model], name: str) -> str:
    return f"%s::{model._meta.get_field(name).db_type(connection)}"  # type: ignore[union-attr]


def _db_value(model: type[models.Model], name: str, value: Any) -> Any:
    field = model._meta.get_field(name)
    if isinstance(field, models.JSONField):
        return json.dumps(value)
    return value


def _insert_row(obj: models.Model) -> tuple[list[str], list[Any]]:
    """Columns and values of a new row, as Django would insert them."""
    columns: list[str] = []
    values: list[Any] = []
    for field in obj._meta.concrete_fields:
        if field.primary_key:
            continue
        columns.append(field.column)
        values.append(_db_value(type(obj), field.name, getattr(obj, field.attname)))
    return columns, values


def _points_at(entry: LedgerEntry, reservation: Reservation) -> bool:
    return entry.reservation_id is None and entry._state.fields_cache.get("reservation") is reservation


def _expire_due(account: CreditAccount, now: datetime, writes: _Writes) -> int:
    """Stage the expiry of the free part of every grant past its expiry (the held part expires
    when its reservation ends). Returns the units expired. Caller holds the account lock;
    cheap when nothing is due (one comparison)."""
    if account.next_expiry_at is None or account.next_expiry_at > now:
        return 0
    expired_total = 0
    due = CreditGrant.objects.filter(account=account, expires_at__lte=now, balance_units__gt=F("held_units"))
    for grant in due:
        free = grant.balance_units - grant.held_units
        writes.grant(grant.pk, balance=-free, expired_at=now)
        writes.entry(
            grant=grant,
            kind=EntryKind.EXPIRE,
            amount_units=-free,
            idempotency_key=f"expire:{grant.pk}:{grant.balance_units}:{grant.held_units}:{now.isoformat()}",
            metadata={"expires_at": grant.expires_at.isoformat() if grant.expires_at else None},
        )
        expired_total += free
    writes.change_account(balance=-expired_total)
    account.next_expiry_at = (
        CreditGrant.objects.filter(account=account, expires_at__gt=now, balance_units__gt=0)
        .order_by("expires_at")
        .values_list("expires_at", flat=True)
        .first()
    )
    return expired_total


def _expire_source(account: CreditAccount, source: str, now: datetime, writes: _Writes) -> int:
    """End every live grant of `source` now (their free part expires at once, a held part when
    its reservation ends). Caller holds the account lock."""
    live = CreditGrant.objects.filter(account=account, source=source, balance_units__gt=0).filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=now)
    )
    if not live.update(expires_at=now):
        return 0
    account.next_expiry_at = now
    return _expire_due(account, now, writes)


def _consumption_key(grant: CreditGrant) -> tuple[bool, datetime | None, int, int]:
    # The same order as `_consumption_order`, for grants already loaded.
    return (grant.expires_at is None, grant.expires_at, grant.source_rank, grant.pk)


def _consumption_order(account: CreditAccount, now: datetime) -> list[CreditGrant]:
    """The grants with free credits, in the order they are spent: soonest-expiring first,
    never-expiring (purchased) last, ties by source then age. Sorted here rather than in SQL
    (an account has a handful of live grants; compiling the ORDER BY is the dearer part)."""
    live = _select(
        CreditGrant,
        "account_id = %s AND balance_units > held_units AND (expires_at IS NULL OR expires_at > %s)",
        [account.pk, now],
    )
    return sorted(live, key=_consumption_key)


def _save_account(writes: _Writes, *, balance_delta: int, held_delta: int) -> None:
    """Stage the call's change to the account and keep its low-balance alert level.

    An alert goes out once per downward crossing caused by spending (a hold, a charge, a
    clawback). The level only goes back down — re-arming a threshold — when credits are added
    (grant, refund, positive adjustment) and lift the available balance above it; a hold that
    is released does not re-arm, or every call near a threshold would send another email."""
    account = writes.account
    writes.change_account(balance=balance_delta, held=held_delta)
    level = _alert_level(account)
    spending = balance_delta < 0 or held_delta > 0
    if level > account.alert_level:
        if spending:
            writes.alert_threshold = account.alert_thresholds[level - 1]
    elif balance_delta <= 0:
        level = account.alert_level
    account.alert_level = level


def _alert_level(account: CreditAccount) -> int:
    available = account.available_units
    return sum(1 for t in account.alert_thresholds if available < t)


# ---------------------------------------------------------------------------- grants


def _grant_in_lock(
    writes: _Writes,
    *,
    units: int,
    source: str,
    grant_key: str,
    entry_key: str,
    kind: str,
    expires_at: datetime | None,
    reference: str,
    reason: str,
    acting_user: User | None,
    metadata: dict[str, Any] | None = None,
) -> CreditGrant:
    account = writes.account
    # Created with its balance: the grant's own entry below accounts for it.
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
        idempotency_key=grant_key,
        created_by=acting_user if acting_user is not None and acting_user.pk else None,
        created_at=writes.now,
    )
    writes.new_grants.append(grant)
    if expires_at is not None and (account.next_expiry_at is None or expires_at < account.next_expiry_at):
        account.next_expiry_at = expires_at
    writes.entry(
        grant=grant,
        kind=kind,
        amount_units=units,
        idempotency_key=entry_key,
        actor=grant.created_by,
        metadata={"source": source, "reference": reference, "reason": reason, **(metadata or {})},
    )
    _save_account(writes, balance_delta=units, held_delta=0)
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
    acting_user: User | None = None,
    replace_source: bool = False,
) -> CreditGrant:
    """Add a bucket of credits. Replaying the same key returns the first grant unchanged.
    A grant by a person (`acting_user`: staff, a redeemed code) is audited as `credits.grant`;
    one by the system (payments, trials, monthly credits) is recorded in the ledger only.

    `replace_source`: what is left of earlier grants from the same source expires now (a new
    subscription period resets the period's credits; purchased credits are untouched). Credits
    held by calls in flight on those grants are charged or, if released, expire then."""
    if source not in Source.values:
        raise CreditsError(f"Unknown credit source: {source}.")
    units = _units(amount)
    key = _key(idempotency_key)
    account = account_lock(workspace)
    existing = _one(CreditGrant.objects.filter(idempotency_key=key))
    if existing is not None:  # a replay, even after the requested expiry has passed
        _same_workspace(existing, account.workspace_id)
        return existing
    now = timezone.now()
    if expires_at is not None and expires_at <= now:
        raise CreditsError("The expiry must be in the future.")
    writes = _Writes(account, now)
    if replace_source:
        _expire_source(account, source, now, writes)
    grant = _grant_in_lock(
        writes,
        units=units,
        source=source,
        grant_key=key,
        entry_key=f"grant:{key}",
        kind=EntryKind.GRANT,
        expires_at=expires_at,
        reference=reference,
        reason=reason,
        acting_user=acting_user,
    )
    writes.flush()
    if acting_user is not None:
        audit_record(
            actor=acting_user,
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
    try:
        units = to_units(amount) if amount else 0
    except AmountError:
        # A typo in the setting must not break sign-up; the workspace simply gets no trial.
        logger.warning("TRIAL_CREDITS is not a number of credits: %r", amount)
        units = 0
    if units <= 0:
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


def credits_account_start(*, workspace: Workspace, trial: bool) -> CreditAccount:
    """Open a new workspace's account, with the configured trial credits when `trial`. Only each
    person's first (personal) workspace gets a trial, so creating more workspaces cannot mint
    more of them."""
    if trial:
        credits_grant_trial(workspace=workspace)
    return credits_account_open(workspace=workspace)


# ---------------------------------------------------------------------------- reservations


def _check_caps(account: CreditAccount, units: int, user: User | None, now: datetime) -> None:
    """Refuse a hold that would take the day's or month's spending (workspace-wide or by this
    member) past a cap. Charged plus still-held credits count, so parallel calls cannot slip
    past a cap together (the account lock serialises them)."""
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    month_start = day_start.replace(day=1)
    user_id = user.pk if user is not None and user.pk else None
    caps: list[tuple[str, int | None, datetime, bool]] = [
        ("daily", account.daily_cap_units, day_start, False),
        ("monthly", account.monthly_cap_units, month_start, False),
    ]
    if user_id is not None:
        caps += [
            ("member daily", account.member_daily_cap_units, day_start, True),
            ("member monthly", account.member_monthly_cap_units, month_start, True),
        ]
    caps = [cap for cap in caps if cap[1] is not None]
    if not caps:
        return
    spent_expr = models.Case(
        models.When(status=Reservation.Status.SETTLED, then=F("charged_units")),
        models.When(status=Reservation.Status.HELD, then=F("amount_units")),
        default=Value(0),
        output_field=models.BigIntegerField(),
    )
    # One query for every cap that is set.
    totals = Reservation.objects.filter(account=account, created_at__gte=month_start).aggregate(
        **{
            f"c{i}": Coalesce(
                Sum(spent_expr, filter=Q(created_at__gte=since, **({"user_id": user_id} if by_member else {}))),
                Value(0),
            )
            for i, (_, _, since, by_member) in enumerate(caps)
        }
    )
    for i, (name, limit, _, _) in enumerate(caps):
        assert limit is not None
        spent = int(totals[f"c{i}"])
        if spent + units > limit:
            raise SpendingCapReached(cap=name, limit_units=limit, spent_units=spent, requested_units=units)


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
    else:
        units = _raw_units(units)
    key = _key(idempotency_key)
    workspace_id = _workspace_id(workspace)
    # A replay needs no lock: reservations are never deleted, and a key is never reused.
    existing = _reservation_by_key(key)
    if existing is None:
        try:
            return _reserve(
                workspace_id,
                units=units,
                key=key,
                user=user if user is not None and user.pk else None,
                service=service,
                model=model,
                rate_card=rate_card,
                related=related,
            )
        except IntegrityError:
            # A twin with the same key won the lock and committed first: its reservation's
            # unique key refused ours, and everything this call wrote was rolled back.
            existing = _reservation_by_key(key)
            if existing is None:
                raise
    _same_workspace(existing, workspace_id)
    return existing


def _reservation_by_key(key: str) -> Reservation | None:
    found = _select(Reservation, "idempotency_key = %s", [key])
    return found[0] if found else None


@transaction.atomic
def _reserve(
    workspace_id: int,
    *,
    units: int,
    key: str,
    user: User | None,
    service: str,
    model: str,
    rate_card: RateCard | None,
    related: models.Model | None,
) -> Reservation:
    account = account_lock(workspace_id)
    # Read the clock under the lock: the lock orders every change to this account, so each one
    # sees a time no earlier than the last (an expiry applied by a later `now` is never undone).
    now = timezone.now()
    writes = _Writes(account, now)
    _expire_due(account, now, writes)
    if account.available_units < units:
        raise InsufficientCredits(available_units=account.available_units, requested_units=units)
    _check_caps(account, units, user, now)
    allocations: dict[str, int] = {}
    remaining = units
    for grant in _consumption_order(account, now):
        take = min(remaining, grant.available_units)
        allocations[str(grant.pk)] = take
        remaining -= take
        if remaining == 0:
            break
    if remaining:  # projections out of step with grants: refuse rather than overdraw
        raise CreditsError("Credit balance is inconsistent; run `credits reconcile`.")
    reservation = Reservation(
        workspace_id=account.workspace_id,
        account=account,
        user=user,
        idempotency_key=key,
        service=service,
        model=model,
        rate_card=rate_card,
        amount_units=units,
        allocations=allocations,
        created_at=now,
        **_related(related),
    )
    writes.new_reservation = reservation
    for grant_id, take in allocations.items():
        writes.grant(int(grant_id), held=take)
        writes.entry(
            grant_id=int(grant_id),
            reservation=reservation,
            kind=EntryKind.RESERVE,
            held_units=take,
            idempotency_key=f"reserve:{key}:{grant_id}",
            actor=user,
        )
    _save_account(writes, balance_delta=0, held_delta=units)
    # A twin's committed key makes this raise IntegrityError, and nothing is written.
    writes.flush()
    return reservation


CHECKPOINT = -1  # `charge_units` for the sweeper: charge what was checkpointed, read under the lock


def _finish(
    reservation: Reservation, *, charge_units: int | None, usage: dict[str, Any] | None, reason: str
) -> tuple[Reservation, bool]:
    """End a held reservation: charge `charge_units` (None: release everything) and release the
    rest. Returns the reservation and whether this call ended it; a reservation that already
    ended is returned as stored (the first outcome stands) and nothing is written.

    Reads `allocations` and `amount_units` from the given instance: they never change after
    the reserve."""
    # Only the grants' expiry and rank are read here, and they never change: loaded before the
    # lock to keep it short.
    grant_ids = [int(g) for g in reservation.allocations]
    grants = (
        sorted(_select(CreditGrant, f"id IN ({', '.join(['%s'] * len(grant_ids))})", grant_ids), key=_consumption_key)
        if grant_ids
        else []
    )
    account = account_lock(reservation.workspace_id)
    now = timezone.now()
    if charge_units == CHECKPOINT or (account.next_expiry_at is not None and account.next_expiry_at <= now):
        # Read the reservation under the lock first: the sweeper charges what was checkpointed,
        # and expiry must not be written by a call that turns out to change nothing.
        reservation = Reservation.objects.get(pk=reservation.pk)
        if reservation.status != Reservation.Status.HELD:
            return reservation, False
        if charge_units == CHECKPOINT:
            charge_units = reservation.checkpoint_units if reservation.checkpoint_units > 0 else None
    writes = _Writes(account, now)
    _expire_due(account, now, writes)
    key = reservation.idempotency_key
    to_charge = 0 if charge_units is None else charge_units
    charged = 0
    balance_delta = 0
    # Charge in consumption order (soonest expiry first), not in the order of `allocations`:
    # PostgreSQL's jsonb does not keep key order.
    for grant in grants:
        held = reservation.allocations[str(grant.pk)]
        charge = min(to_charge - charged, held)
        unused = held - charge
        past_expiry = grant.expires_at is not None and grant.expires_at <= now
        # The unused hold on a grant past its expiry expires now instead of returning.
        lapsed = unused if past_expiry else 0
        writes.grant(grant.pk, balance=-charge - lapsed, held=-held, expired_at=now if past_expiry else None)
        if charge:
            writes.entry(
                grant=grant,
                reservation=reservation,
                kind=EntryKind.SETTLE,
                amount_units=-charge,
                held_units=-charge,
                idempotency_key=f"settle:{key}:{grant.pk}",
            )
        if unused:
            writes.entry(
                grant=grant,
                reservation=reservation,
                kind=EntryKind.RELEASE,
                held_units=-unused,
                idempotency_key=f"release:{key}:{grant.pk}",
            )
        if lapsed:
            writes.entry(
                grant=grant,
                reservation=reservation,
                kind=EntryKind.EXPIRE,
                amount_units=-lapsed,
                idempotency_key=f"lapse:{key}:{grant.pk}",
                metadata={"expires_at": grant.expires_at.isoformat() if grant.expires_at else None},
            )
        charged += charge
        balance_delta -= charge + lapsed
    # The actual cost exceeded the hold: charge the excess from what is available, and record
    # any remainder as an explicit shortfall (the balance never goes negative).
    excess = to_charge - charged
    extra = 0
    if excess > 0:
        # Every unit of this hold is charged, so the staged changes leave every grant's free
        # credits as stored: what is spendable is the free credits of unexpired grants.
        for grant in _consumption_order(account, now):
            take = min(excess - extra, grant.available_units)
            if take <= 0:
                break
            writes.grant(grant.pk, balance=-take)
            writes.entry(
                grant=grant,
                reservation=reservation,
                kind=EntryKind.SETTLE,
                amount_units=-take,
                idempotency_key=f"excess:{key}:{grant.pk}",
            )
            extra += take
    fields: dict[str, Any] = {
        "status": Reservation.Status.RELEASED if charge_units is None else Reservation.Status.SETTLED,
        "charged_units": charged + extra,
        "shortfall_units": excess - extra if excess > 0 else 0,
        "outcome_reason": reason[:200],
        "finished_at": now,
    }
    if usage:
        fields["usage"] = usage
    # The guarded transition, under the account lock like every other change to this
    # reservation: exactly one call moves it on from held; a later one writes nothing.
    writes.end = (reservation.pk, fields)
    _save_account(writes, balance_delta=balance_delta - extra, held_delta=-reservation.amount_units)
    if not writes.flush():
        return Reservation.objects.get(pk=reservation.pk), False
    for name, value in fields.items():
        setattr(reservation, name, value)
    if reservation.status == Reservation.Status.SETTLED:
        send_on_commit(charge_settled, sender=CreditAccount, reservation=reservation)
    return reservation, True


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
    else:
        actual_units = _raw_units(actual_units, allow_zero=True)
    return _finish(reservation, charge_units=actual_units, usage=usage, reason=reason)[0]


@transaction.atomic
def credits_release(*, reservation: Reservation, reason: str = "", acting_user: User | None = None) -> Reservation:
    """Return the whole hold. A no-op returning the first outcome if the reservation ended.

    `acting_user`: a staff member ending a stuck hold by hand. The reservation records
    `staff_release_outcome(reason)`, and the audit row `credits.release` names them when this
    call ended the hold (not a settle or sweep that got the lock first)."""
    outcome = reason if acting_user is None else staff_release_outcome(reason)
    ended, changed = _finish(reservation, charge_units=None, usage=None, reason=outcome)
    if changed and acting_user is not None:
        audit_record(
            actor=acting_user,
            action="credits.release",
            target=ended,
            workspace=reservation.workspace,
            metadata={"reason": reason, "held_units": ended.amount_units},
        )
    return ended


def staff_release_outcome(reason: str) -> str:
    """What a hold ended by staff (`credits_release(acting_user=...)`) records as its outcome."""
    return f"released by staff: {reason}"[:200]


def credits_checkpoint(*, reservation: Reservation, delivered_units: int) -> None:
    """Record the cost delivered so far, so a sweeper can settle it if the caller dies."""
    Reservation.objects.filter(pk=reservation.pk, status=Reservation.Status.HELD).update(
        checkpoint_units=max(delivered_units, 0)
    )


SWEEP_REASON = "swept: stale hold"


def credits_sweep(*, older_than: timedelta, now: datetime | None = None) -> dict[str, int]:
    """End holds older than `older_than`: settle what was checkpointed as delivered, release
    the rest. Each ends in its own transaction; a hold ended meanwhile is left as it is."""
    now = now or timezone.now()
    stale = list(Reservation.objects.held().filter(created_at__lt=now - older_than))
    counts = {"settled": 0, "released": 0}
    for reservation in stale:
        with transaction.atomic(durable=True):
            ended, changed = _finish(reservation, charge_units=CHECKPOINT, usage=None, reason=SWEEP_REASON)
        if changed:
            counts["settled" if ended.status == Reservation.Status.SETTLED else "released"] += 1
    return counts


def credits_expire(*, now: datetime | None = None) -> int:
    """Apply due expiries for every account (the periodic task). Returns units expired."""
    now = now or timezone.now()
    total = 0
    account_ids = CreditAccount.objects.filter(next_expiry_at__lte=now).values_list("workspace_id", flat=True)
    for workspace_id in list(account_ids):
        with transaction.atomic(durable=True):
            account = account_lock(workspace_id)
            writes = _Writes(account, now)
            total += _expire_due(account, now, writes)
            _save_account(writes, balance_delta=0, held_delta=0)  # alert level
            writes.flush()
    return total


# ---------------------------------------------------------------------------- staff & billing


def _take_available(
    writes: _Writes,
    *,
    units: int,
    kind: str,
    key: str,
    acting_user: User | None,
    metadata: dict[str, Any],
    prefer: list[int] | None = None,
) -> int:
    """Stage removing up to `units` from available credits in consumption order (the grants
    in `prefer` first); returns the units taken."""
    taken = 0
    order = _consumption_order(writes.account, writes.now)
    if prefer:
        order.sort(key=lambda grant: grant.pk not in prefer)  # stable: consumption order within
    for grant in order:
        take = min(units - taken, grant.available_units)
        if take <= 0:
            break
        writes.grant(grant.pk, balance=-take)
        writes.entry(
            grant=grant,
            kind=kind,
            amount_units=-take,
            idempotency_key=f"{kind}:{key}:{grant.pk}",
            actor=acting_user,
            metadata=metadata,
        )
        taken += take
        if taken == units:
            break
    return taken


@transaction.atomic(durable=True)
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
    (refused if the workspace has less available). Returns the signed units applied; a replay
    of the key returns the first result and changes nothing."""
    reason = reason.strip()
    if not reason:
        raise CreditsError("Give a reason for the adjustment.")
    units = _units(amount, allow_negative=True)
    key = _key(idempotency_key)
    account = account_lock(workspace)
    # Every adjustment writes one entry under this exact key (the grant entry, or a record).
    previous = _one(LedgerEntry.objects.filter(idempotency_key=f"adjust:{key}"))
    if previous is not None:
        _same_workspace(previous, account.workspace_id)
        return int(previous.metadata["applied_units"])
    now = timezone.now()
    if expires_at is not None and expires_at <= now:
        raise CreditsError("The expiry must be in the future.")
    writes = _Writes(account, now)
    _expire_due(account, now, writes)
    metadata: dict[str, Any] = {"reason": reason, "applied_units": units}
    if units > 0:
        _grant_in_lock(
            writes,
            units=units,
            source=Source.BONUS,
            grant_key=f"adjust:{key}",
            entry_key=f"adjust:{key}",
            kind=EntryKind.ADJUST,
            expires_at=expires_at,
            reference="staff adjustment",
            reason=reason,
            acting_user=acting_user,
            metadata=metadata,
        )
    else:
        if account.available_units < -units:
            raise InsufficientCredits(available_units=account.available_units, requested_units=-units)
        taken = _take_available(
            writes,
            units=-units,
            kind=EntryKind.ADJUST,
            key=f"debit:{key}",
            acting_user=acting_user,
            metadata={"reason": reason},
        )
        writes.entry(kind=EntryKind.ADJUST, idempotency_key=f"adjust:{key}", actor=acting_user, metadata=metadata)
        _save_account(writes, balance_delta=-taken, held_delta=0)
    writes.flush()
    audit_record(
        actor=acting_user,
        action="credits.adjust",
        target=account,
        workspace=workspace,
        metadata={"amount": str(amount), "units": units, "reason": reason},
    )
    return units


@dataclass(frozen=True)
class Clawback:
    clawed_units: int
    shortfall_units: int


@transaction.atomic(savepoint=False)
def credits_clawback(
    *,
    workspace: Workspace,
    amount: Decimal | int | str,
    idempotency_key: str,
    reason: str,
    reference: str = "",
    acting_user: User | None = None,
    from_grants: list[int] | None = None,
) -> Clawback:
    """Take back credits (refunded payment, dispute). Takes what is available — from
    `from_grants` (the payment's own grants) first — and records the rest as a shortfall: the
    balance never goes negative. Replays change nothing."""
    units = _units(amount)
    key = _key(idempotency_key)
    account = account_lock(workspace)
    previous = _one(LedgerEntry.objects.filter(idempotency_key=f"clawback-record:{key}"))
    if previous is not None:
        _same_workspace(previous, account.workspace_id)
        return Clawback(previous.metadata["clawed_units"], previous.metadata["shortfall_units"])
    now = timezone.now()
    writes = _Writes(account, now)
    _expire_due(account, now, writes)
    metadata = {"reason": reason, "reference": reference}
    taken = _take_available(
        writes,
        units=units,
        kind=EntryKind.CLAWBACK,
        key=key,
        acting_user=acting_user,
        metadata=metadata,
        prefer=from_grants,
    )
    writes.entry(
        kind=EntryKind.CLAWBACK,
        idempotency_key=f"clawback-record:{key}",
        actor=acting_user,
        metadata={**metadata, "requested_units": units, "clawed_units": taken, "shortfall_units": units - taken},
    )
    _save_account(writes, balance_delta=-taken, held_delta=0)
    writes.flush()
    return Clawback(taken, units - taken)


@transaction.atomic(savepoint=False)
def credits_refund(
    *,
    workspace: Workspace,
    amount: Decimal | int | str,
    idempotency_key: str,
    reason: str,
    source: str = Source.BONUS,
    reference: str = "",
    acting_user: User | None = None,
) -> CreditGrant:
    """Give credits back (e.g. a failed job settled earlier) as a new grant. A replay of the
    key returns the first refund's grant."""
    if source not in Source.values:
        raise CreditsError(f"Unknown credit source: {source}.")
    units = _units(amount)
    key = _key(idempotency_key)
    account = account_lock(workspace)
    # Refund keys live in their own namespace: a refund keyed like the grant it refunds (say,
    # by invoice id) must not be mistaken for a replay of that grant.
    existing = _one(CreditGrant.objects.filter(idempotency_key=f"refund:{key}"))
    if existing is not None:
        _same_workspace(existing, account.workspace_id)
        return existing
    writes = _Writes(account, timezone.now())
    grant = _grant_in_lock(
        writes,
        units=units,
        source=source,
        grant_key=f"refund:{key}",
        entry_key=f"refund:{key}",
        kind=EntryKind.REFUND,
        expires_at=None,
        reference=reference,
        reason=reason,
        acting_user=acting_user,
    )
    writes.flush()
    return grant


# ---------------------------------------------------------------------------- reconciliation


@dataclass(frozen=True)
class Drift:
    """One projection that disagrees with the sum of its ledger entries."""

    account_id: int
    workspace_id: int
    grant_id: int | None
    field: str  # "balance_units" or "held_units"
    stored: int
    expected: int


def _entry_sum(field: str, **outer: str) -> Coalesce:
    """Correlated sum of `field` over the ledger entries of the outer row."""
    sums = (
        LedgerEntry.objects.filter(**{key: OuterRef(ref) for key, ref in outer.items()})
        .order_by()
        .values(*outer)
        .annotate(total=Sum(field))
        .values("total")[:1]
    )
    return Coalesce(Subquery(sums, output_field=models.BigIntegerField()), Value(0))


def _drifts(*, account_ids: list[int] | None = None) -> list[Drift]:
    # Each statement reads stored projections and entry sums from one snapshot, and both are
    # written in the same transaction, so a concurrent service never shows up as drift.
    accounts = CreditAccount.objects.order_by("pk")
    grants = CreditGrant.objects.order_by("account_id", "pk")
    if account_ids is not None:
        accounts = accounts.filter(pk__in=account_ids)
        grants = grants.filter(account_id__in=account_ids)
    found: list[Drift] = []
    for row in accounts.annotate(
        expected_balance=_entry_sum("amount_units", account_id="pk"),
        expected_held=_entry_sum("held_units", account_id="pk"),
    ).values("pk", "workspace_id", "balance_units", "held_units", "expected_balance", "expected_held"):
        for name, expected in (("balance_units", "expected_balance"), ("held_units", "expected_held")):
            if row[name] != row[expected]:
                found.append(Drift(row["pk"], row["workspace_id"], None, name, row[name], row[expected]))
    for row in grants.annotate(
        expected_balance=_entry_sum("amount_units", grant_id="pk"),
        expected_held=_entry_sum("held_units", grant_id="pk"),
    ).values("pk", "account_id", "workspace_id", "balance_units", "held_units", "expected_balance", "expected_held"):
        for name, expected in (("balance_units", "expected_balance"), ("held_units", "expected_held")):
            if row[name] != row[expected]:
                found.append(Drift(row["account_id"], row["workspace_id"], row["pk"], name, row[name], row[expected]))
    return found


def credits_reconcile(*, fix: bool, acting_user: User | None = None) -> list[Drift]:
    """Recompute every account and grant projection from the ledger and return the drift found.
    With `fix`, each drifting account is rewritten from its entries under its account lock (in
    its own transaction) and an audit row `credits.reconcile` records what changed."""
    found = _drifts()
    if not fix or not found:
        return found
    for account_id in sorted({d.account_id for d in found}):
        with transaction.atomic(durable=True):
            workspace_id = CreditAccount.objects.values_list("workspace_id", flat=True).get(pk=account_id)
            account = account_lock(workspace_id)
            # Re-read under the lock: what a fix rewrites must be exactly what the ledger says now.
            drifts = _drifts(account_ids=[account.pk])
            if not drifts:
                continue
            _rewrite_projections(account, drifts)
            audit_record(
                actor=acting_user,
                action="credits.reconcile",
                target=account,
                workspace=account.workspace,
                metadata={
                    "drift": [
                        {"grant_id": d.grant_id, "field": d.field, "stored": d.stored, "expected": d.expected}
                        for d in drifts
                    ]
                },
            )
    return found


def _rewrite_projections(account: CreditAccount, drifts: list[Drift]) -> None:
    grant_values: dict[int, dict[str, int]] = {}
    account_values: dict[str, int] = {}
    for drift in drifts:
        if drift.grant_id is None:
            account_values[drift.field] = drift.expected
        else:
            grant_values.setdefault(drift.grant_id, {})[drift.field] = drift.expected
    # Both fields in one UPDATE so the available >= 0 check sees the final pair.
    for grant_id, values in grant_values.items():
        CreditGrant.objects.filter(pk=grant_id).update(**values)
    if account_values:
        CreditAccount.objects.filter(pk=account.pk).update(**account_values)
