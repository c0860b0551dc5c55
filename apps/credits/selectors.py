"""Reads that feed the credits pages, the header widget and the API."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from django.db.models import Count, F, Q, QuerySet, Sum
from django.db.models.functions import Coalesce, TruncDay
from django.utils import timezone

from apps.credits.models import CreditAccount, CreditGrant, Reservation

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


def credits_balance(*, workspace: Workspace, with_grants: bool = False) -> Balance:
    now = timezone.now()
    account = CreditAccount.objects.filter(workspace=workspace).first()
    if account is None:
        return Balance(0, 0, 0, low=False)
    lapsed = _lapsed_units(account, now)
    available = account.available_units - lapsed
    grants: list[SourceBalance] = []
    if with_grants:
        for grant in (
            CreditGrant.objects.active(now)
            .filter(account=account)
            .order_by(F("expires_at").asc(nulls_last=True), "source_rank", "id")
        ):
            grants.append(
                SourceBalance(grant.source, grant.get_source_display(), grant.available_units, grant.expires_at)
            )
    low = bool(account.alert_thresholds) and available < min(account.alert_thresholds)
    return Balance(available, account.held_units, account.balance_units - lapsed, low=low, grants=grants)


@dataclass(frozen=True)
class UsageFilters:
    start: date | None = None
    end: date | None = None
    service: str = ""
    model: str = ""
    user_id: int | None = None


def usage_queryset(*, workspace: Workspace, filters: UsageFilters) -> QuerySet[Reservation]:
    """Settled charges of the workspace, newest first, with the member preloaded."""
    qs = Reservation.objects.for_workspace(workspace).filter(status=Reservation.Status.SETTLED)
    if filters.start:
        qs = qs.filter(created_at__date__gte=filters.start)
    if filters.end:
        qs = qs.filter(created_at__date__lte=filters.end)
    if filters.service:
        qs = qs.filter(service=filters.service)
    if filters.model:
        qs = qs.filter(model=filters.model)
    if filters.user_id:
        qs = qs.filter(user_id=filters.user_id)
    return qs.select_related("user").order_by("-created_at", "-id")


def usage_totals_by_day(qs: QuerySet[Reservation]) -> list[dict[str, Any]]:
    return list(
        qs.order_by()
        .annotate(day=TruncDay("created_at"))
        .values("day")
        .annotate(units=Sum("charged_units"), calls=Count("id"))
        .order_by("day")
    )


def usage_totals_by_model(qs: QuerySet[Reservation]) -> list[dict[str, Any]]:
    return list(
        qs.order_by()
        .values("service", "model")
        .annotate(units=Sum("charged_units"), calls=Count("id"))
        .order_by("-units")
    )


def usage_total_units(qs: QuerySet[Reservation]) -> int:
    return int(qs.order_by().aggregate(total=Coalesce(Sum("charged_units"), 0))["total"])


def usage_filter_choices(*, workspace: Workspace) -> dict[str, list[Any]]:
    base = Reservation.objects.for_workspace(workspace).filter(status=Reservation.Status.SETTLED).order_by()
    return {
        "models": sorted({m for m in base.values_list("model", flat=True).distinct() if m}),
        "services": sorted({s for s in base.values_list("service", flat=True).distinct() if s}),
    }


def has_held(workspace: Workspace) -> bool:
    return Reservation.objects.for_workspace(workspace).filter(Q(status=Reservation.Status.HELD)).exists()
