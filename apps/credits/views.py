"""The credits pages: balance by source, usage history (filters, totals, chart, CSV export)
and the workspace's credit settings. Reads go through selectors, writes through services."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from apps.core.csv import csv_response
from apps.core.http import WorkspaceRequest
from apps.credits.amounts import to_credits
from apps.credits.charts import usage_chart
from apps.credits.exceptions import CreditsError
from apps.credits.forms import LimitsForm, UsageFilterForm
from apps.credits.models import CreditAccount, Reservation
from apps.credits.selectors import (
    credits_overview,
    service_label,
    usage_facts,
    usage_filter_choices,
    usage_member_choices,
    usage_queryset,
    usage_summary,
    usage_totals_by_day,
    usage_totals_by_model,
)
from apps.credits.services import credits_account_open
from apps.credits.settings_service import credits_settings_update
from apps.workspaces.decorators import workspace_required
from apps.workspaces.exceptions import WorkspacePermissionDenied
from apps.workspaces.roles import Perm
from apps.workspaces.scoping import get_for_workspace_or_404

PAGE_SIZE = 50


@dataclass(frozen=True)
class UsageRow:
    charge: Reservation
    summary: str


def _filter_form(request: WorkspaceRequest) -> UsageFilterForm:
    workspace = request.workspace
    return UsageFilterForm(
        request.GET,
        models=usage_filter_choices(workspace=workspace)["models"],
        members=usage_member_choices(workspace=workspace),
    )


@workspace_required(Perm.USE)
@require_GET
def overview(request: WorkspaceRequest) -> HttpResponse:
    workspace = request.workspace
    summary = credits_overview(workspace=workspace)
    form = _filter_form(request)
    context: dict[str, Any] = {
        "overview": summary,
        "balance": summary.balance,
        # The header widget and low-balance banner read this; reuse the figures loaded here.
        "credit_balance": summary.balance,
        "form": form,
        "can_manage_settings": request.membership.has_perm(Perm.MANAGE_SETTINGS),
    }
    if not form.is_valid():
        context["filter_error"] = form.error_text()
        return render(request, "credits/overview.html", context, status=400)
    filters = form.filters()
    qs = usage_queryset(workspace=workspace, filters=filters)
    page = Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))
    context.update(
        page_obj=page,
        rows=[UsageRow(charge, usage_summary(charge.usage, service=charge.service)) for charge in page.object_list],
        filtered=any(form.cleaned_data.get(name) for name in form.fields),
    )
    if page.paginator.count:
        by_day = usage_totals_by_day(qs)
        by_model = [{**row, "service_label": service_label(row["service"])} for row in usage_totals_by_model(qs)]
        context.update(
            by_day=by_day,
            by_model=by_model,
            total_units=sum(int(row["units"] or 0) for row in by_model),
            chart=usage_chart(by_day, start=filters.start, end=filters.end),
        )
    return render(request, "credits/overview.html", context)


@workspace_required(Perm.USE)
@require_GET
def usage_detail(request: WorkspaceRequest, reservation_id: int) -> HttpResponse:
    charge = get_for_workspace_or_404(
        Reservation.objects.filter(status=Reservation.Status.SETTLED).select_related("user", "rate_card"),
        request.workspace,
        pk=reservation_id,
    )
    return render(
        request,
        "credits/usage_detail.html",
        {
            "charge": charge,
            "usage": usage_facts(charge.usage, service=charge.service),
            "service_label": service_label(charge.service),
        },
    )


# ---------------------------------------------------------------------------- CSV export

CSV_HEADER = [
    "id",
    "created_at",
    "settled_at",
    "service",
    "model",
    "member_email",
    "member_name",
    "credits",
    "shortfall_credits",
    "rate_card_version",
    "usage",
]


# workspace_required is typed for HttpResponse; a streaming response is an HttpResponseBase.
@workspace_required(Perm.USE)
@require_GET
def usage_export(request: WorkspaceRequest) -> HttpResponseBase:
    form = _filter_form(request)
    if not form.is_valid():
        return HttpResponse(
            f"Invalid filters: {form.error_text()}", status=400, content_type="text/plain; charset=utf-8"
        )
    qs = usage_queryset(workspace=request.workspace, filters=form.filters())
    # The body is produced after the view returns, outside the middleware that activates the
    # user's time zone: capture it now.
    tz = timezone.get_current_timezone()

    def rows() -> Iterator[tuple[Any, ...]]:
        for charge in qs.iterator(chunk_size=1000):
            user = charge.user
            yield (
                charge.pk,
                timezone.localtime(charge.created_at, tz).isoformat(),
                timezone.localtime(charge.finished_at, tz).isoformat() if charge.finished_at else "",
                charge.service,
                charge.model,
                user.email if user else "",
                user.name if user else "",
                to_credits(charge.charged_units),
                to_credits(charge.shortfall_units),
                charge.rate_card.version if charge.rate_card else "",
                json.dumps(charge.usage, sort_keys=True, ensure_ascii=False) if charge.usage else "",
            )

    filename = f"usage-{request.workspace.slug}-{timezone.localdate():%Y%m%d}.csv"
    return csv_response(filename=filename, header=CSV_HEADER, rows=rows())


# ---------------------------------------------------------------------------- settings


def _settings_page(
    request: WorkspaceRequest, account: CreditAccount, *, limits_form: LimitsForm | None = None, status: int = 200
) -> HttpResponse:
    context = {"account": account, "limits_form": limits_form or LimitsForm.for_account(account)}
    return render(request, "credits/settings.html", context, status=status)


def _forbidden(request: WorkspaceRequest, reason: str) -> HttpResponse:
    return render(request, "errors/403.html", {"reason": reason}, status=403)


@workspace_required(Perm.MANAGE_SETTINGS)
@require_http_methods(["GET", "POST"])
def credit_settings(request: WorkspaceRequest) -> HttpResponse:
    account = credits_account_open(workspace=request.workspace)
    if request.method != "POST":
        return _settings_page(request, account)
    if request.POST.get("section") != "limits":
        return HttpResponse("Unknown settings section.", status=400, content_type="text/plain; charset=utf-8")
    form = LimitsForm(request.POST)
    if not form.is_valid():
        return _settings_page(request, account, limits_form=form, status=400)
    try:
        credits_settings_update(account=account, acting_user=request.user, **form.service_fields())
    except WorkspacePermissionDenied as exc:
        return _forbidden(request, exc.message)
    except CreditsError as exc:
        form.add_error(None, exc.message)
        return _settings_page(request, account, limits_form=form, status=400)
    messages.success(request, "Credit settings saved.")
    return redirect("credits:settings")
