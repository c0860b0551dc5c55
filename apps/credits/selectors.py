"""Reads that feed the credits pages, the header widget and the API."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from django.db.models import Count, F, Q, QuerySet, Sum
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from apps.credits.models import CreditAccount, CreditGrant, Reservation, Service, Source

if TYPE_CHECKING:
    from apps.workspaces.models import Workspace


@dataclass(frozen=True)
class SourceBalance:
    source: str
    label: str
    available_units: int
    expires_at: datetime | None


@dataclass(frozen=True)
class Balance:
    available_units: int
    held_units: int
    balance_units: int
    low: bool
    grants: list[SourceBalance] = field(default_factory=list)


def _lapsed_units(account: CreditAccount, now: datetime) -> int:
    """Free credits of grants past expiry that the periodic task has not removed yet: reads
    never count them."""
    if account.next_expiry_at is None or account.next_expiry_at > now:
        return 0
    total = CreditGrant.objects.filter(account=account, expires_at__lte=now).aggregate(
        free=Coalesce(Sum(F("balance_units") - F("held_units")), 0)
    )["free"]
    return int(total)


def _active_grants(account: CreditAccount, now: datetime) -> QuerySet[CreditGrant]:
    # Consumption order: soonest-expiring first, never-expiring last.
    return (
        CreditGrant.objects.active(now)
        .filter(account=account)
        .order_by(F("expires_at").asc(nulls_last=True), "source_rank", "id")
    )


def _is_low(account: CreditAccount, available_units: int) -> bool:
    return bool(account.alert_thresholds) and available_units < min(account.alert_thresholds)


def credits_balance(*, workspace: Workspace, with_grants: bool = False) -> Balance:
    now = timezone.now()
    account = CreditAccount.objects.filter(workspace=workspace).first()
    if account is None:
        return Balance(0, 0, 0, low=False)
    lapsed = _lapsed_units(account, now)
    available = account.available_units - lapsed
    grants: list[SourceBalance] = []
    if with_grants:
        for grant in _active_grants(account, now):
            grants.append(
                SourceBalance(grant.source, grant.get_source_display(), grant.available_units, grant.expires_at)
            )
    return Balance(
        available, account.held_units, account.balance_units - lapsed, low=_is_low(account, available), grants=grants
    )


# ---------------------------------------------------------------------------- credits page


@dataclass(frozen=True)
class GrantRow:
    """One active grant as the credits page shows it."""

    pk: int
    source: str
    label: str
    amount_units: int
    available_units: int
    held_units: int
    expires_at: datetime | None
    created_at: datetime


@dataclass(frozen=True)
class SourceTotal:
    source: str
    label: str
    available_units: int
    held_units: int
    grants: int
    next_expiry_at: datetime | None


@dataclass(frozen=True)
class CreditsOverview:
    balance: Balance
    account: CreditAccount | None
    grants: list[GrantRow]
    sources: list[SourceTotal]
    trial_expires_at: datetime | None
    subscription_expires_at: datetime | None


def _latest_expiry(grants: list[GrantRow], source: str) -> datetime | None:
    dates = [g.expires_at for g in grants if g.source == source and g.expires_at is not None]
    return max(dates) if dates else None


def credits_overview(*, workspace: Workspace) -> CreditsOverview:
    """Balance, every active grant in consumption order and the totals per source, from the
    account row and one query for the grants (plus one when an expiry is due)."""
    now = timezone.now()
    account = CreditAccount.objects.filter(workspace=workspace).first()
    if account is None:
        return CreditsOverview(Balance(0, 0, 0, low=False), None, [], [], None, None)
    lapsed = _lapsed_units(account, now)
    available = account.available_units - lapsed
    grants = [
        GrantRow(
            pk=g.pk,
            source=g.source,
            label=g.get_source_display(),
            amount_units=g.amount_units,
            available_units=g.available_units,
            held_units=g.held_units,
            expires_at=g.expires_at,
            created_at=g.created_at,
        )
        for g in _active_grants(account, now)
    ]
    balance = Balance(
        available,
        account.held_units,
        account.balance_units - lapsed,
        low=_is_low(account, available),
        grants=[SourceBalance(g.source, g.label, g.available_units, g.expires_at) for g in grants],
    )
    sources: list[SourceTotal] = []
    for value, label in Source.choices:
        of_source = [g for g in grants if g.source == value]
        if not of_source:
            continue
        expiries = [g.expires_at for g in of_source if g.expires_at is not None]
        sources.append(
            SourceTotal(
                source=value,
                label=str(label),
                available_units=sum(g.available_units for g in of_source),
                held_units=sum(g.held_units for g in of_source),
                grants=len(of_source),
                next_expiry_at=min(expiries) if expiries else None,
            )
        )
    return CreditsOverview(
        balance=balance,
        account=account,
        grants=grants,
        sources=sources,
        trial_expires_at=_latest_expiry(grants, Source.TRIAL),
        subscription_expires_at=_latest_expiry(grants, Source.SUBSCRIPTION),
    )


# ---------------------------------------------------------------------------- usage history


@dataclass(frozen=True)
class UsageFilters:
    start: date | None = None
    end: date | None = None
    service: str = ""
    model: str = ""
    user_id: int | None = None


def _local_midnight(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def usage_queryset(*, workspace: Workspace, filters: UsageFilters) -> QuerySet[Reservation]:
    """Settled charges of the workspace, newest first, with the member and rate preloaded.
    Dates are days in the current time zone, both ends included."""
    qs = Reservation.objects.for_workspace(workspace).filter(status=Reservation.Status.SETTLED)
    # A range on the column itself (not `created_at__date`) so the (workspace, created_at)
    # index serves it.
    if filters.start:
        qs = qs.filter(created_at__gte=_local_midnight(filters.start))
    if filters.end and filters.end < date.max:
        qs = qs.filter(created_at__lt=_local_midnight(filters.end + timedelta(days=1)))
    if filters.service:
        qs = qs.filter(service=filters.service)
    if filters.model:
        qs = qs.filter(model=filters.model)
    if filters.user_id:
        qs = qs.filter(user_id=filters.user_id)
    return qs.select_related("user", "rate_card").order_by("-created_at", "-id")


def usage_totals_by_day(qs: QuerySet[Reservation]) -> list[dict[str, Any]]:
    """[{"day": date, "units": int, "calls": int}], oldest first; days in the current time zone."""
    return list(
        qs.order_by()
        .annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(units=Sum("charged_units"), calls=Count("id"))
        .order_by("day")
    )


def usage_totals_by_model(qs: QuerySet[Reservation]) -> list[dict[str, Any]]:
    """[{"service", "model", "units", "calls"}], most credits first."""
    return list(
        qs.order_by()
        .values("service", "model")
        .annotate(units=Sum("charged_units"), calls=Count("id"))
        .order_by("-units", "service", "model")
    )


def usage_total_units(qs: QuerySet[Reservation]) -> int:
    return int(qs.order_by().aggregate(total=Coalesce(Sum("charged_units"), 0))["total"])


def usage_filter_choices(*, workspace: Workspace) -> dict[str, list[Any]]:
    """The services and models this workspace has been charged for (one query)."""
    pairs = (
        Reservation.objects.for_workspace(workspace)
        .filter(status=Reservation.Status.SETTLED)
        .order_by()
        .values_list("service", "model")
        .distinct()
    )
    services: set[str] = set()
    models: set[str] = set()
    for service, model in pairs:
        if service:
            services.add(service)
        if model:
            models.add(model)
    return {"models": sorted(models), "services": sorted(services)}


def usage_member_choices(*, workspace: Workspace) -> list[tuple[int, str]]:
    """(user id, label) of the workspace's current members, by name."""
    from apps.workspaces.models import Membership

    members = Membership.objects.for_workspace(workspace).select_related("user")
    choices = [(m.user_id, f"{m.user.name} ({m.user.email})") for m in members]
    return sorted(choices, key=lambda c: c[1].casefold())


def service_label(value: str) -> str:
    return str(dict(Service.choices).get(value, value))


# ---------------------------------------------------------------------------- usage in words

# How a metered call ended (`usage["outcome"]`, the generation engine's outcomes), in words.
OUTCOME_WORDS = {
    "ok": "Completed",
    "stopped": "Stopped by the user",
    "client_gone": "Cut short: the client disconnected",
    "error": "Ended with an error",
    "interrupted": "Interrupted: the worker stopped",
    "refused": "Refused before the call",
}
# Counted quantities: usage key -> (singular, plural), shown as "1,200 input tokens".
COUNTED: dict[str, tuple[str, str]] = {
    "input_tokens": ("input token", "input tokens"),
    "cached_input_tokens": ("cached input token", "cached input tokens"),
    "output_tokens": ("output token", "output tokens"),
    "images": ("image", "images"),
    "characters": ("character", "characters"),
}
# What `items` counts, by service (anything else: items).
ITEMS: dict[str, tuple[str, str]] = {
    Service.EMBEDDINGS.value: ("input", "inputs"),
    Service.VOICE_CLONE.value: ("voice", "voices"),
}
# Counts shown only when there are some.
ONLY_WHEN_SOME = {"cached_input_tokens"}


@dataclass(frozen=True)
class UsageFact:
    """One thing a charge's usage record says: `label` and `value` for the charge's page,
    `summary` for the one-line list ("" when it has nothing worth a mention there)."""

    label: str
    value: str
    summary: str


def _number(value: Any) -> str:
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, int):
        return f"{value:,}"
    if value is None:
        return "—"
    if isinstance(value, (str, float)):
        return str(value)
    return json.dumps(value, sort_keys=True)


def _counted(value: Any, words: tuple[str, str]) -> str:
    return f"{_number(value)} {words[0] if value == 1 else words[1]}"


def _usage_fact(key: str, value: Any, service: str) -> UsageFact | None:
    """The fact for one usage key, or None for a flag that says nothing out of the ordinary
    (usage reported by the provider, an answer not served from the cache, no cached tokens)."""
    label = key.replace("_", " ").capitalize()
    if key == "outcome":
        ended = OUTCOME_WORDS.get(str(value), str(value).replace("_", " ").capitalize())
        return UsageFact("Outcome", ended, ended)
    if key == "reported":
        if value is not False:
            return None
        return UsageFact("Usage figures", "Estimated: the provider reported none", "Usage estimated")
    if key == "response_cache":
        return UsageFact("Answer", "Served from the response cache", "Served from cache") if value is True else None
    if key in ONLY_WHEN_SOME and not value:
        return None
    counts = isinstance(value, int) and not isinstance(value, bool)
    if key in COUNTED and counts:
        return UsageFact(label, _number(value), _counted(value, COUNTED[key]))
    if key == "items" and counts:
        words = ITEMS.get(service, ("item", "items"))
        return UsageFact(words[1].capitalize(), _number(value), _counted(value, words))
    if key == "audio_seconds":
        return UsageFact("Audio", f"{_number(value)} s", f"{_number(value)} s of audio")
    shown = _number(value)
    return UsageFact(label, shown, f"{label.lower()} {shown}")


def usage_facts(usage: Any, *, service: str = "") -> list[UsageFact]:
    """What a charge's usage record says, in words and in a fixed order: how the call ended,
    then the quantities charged, then anything unusual (estimated usage, a cached answer)."""
    if not isinstance(usage, dict):
        return []
    first = ["outcome", *COUNTED, "audio_seconds", "items"]
    last = ["response_cache", "reported"]
    keys = [k for k in first if k in usage]
    keys += [k for k in usage if k not in first and k not in last]
    keys += [k for k in last if k in usage]
    facts = (_usage_fact(str(key), usage[key], service) for key in keys)
    return [fact for fact in facts if fact is not None]


def usage_summary(usage: Any, *, service: str = "", limit: int = 120) -> str:
    """A one-line "Completed · 1,200 input tokens · 300 output tokens" for the usage list."""
    text = " · ".join(fact.summary for fact in usage_facts(usage, service=service) if fact.summary)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def has_held(workspace: Workspace) -> bool:
    return Reservation.objects.for_workspace(workspace).filter(Q(status=Reservation.Status.HELD)).exists()
