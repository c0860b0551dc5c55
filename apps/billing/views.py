"""The billing pages: pricing, Checkout (subscriptions and credit packs), the return from
Checkout, the workspace's billing page with the owner's actions (Customer Portal, plan change,
cancel and resume), automatic top-up and redemption codes.

Stripe is reached only through the services. Whatever refuses a purchase (payments not
configured, a billing rule, Stripe itself) becomes a message on the page the user came from,
never a 500."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from constance import config
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.billing.entitlements import plan_for
from apps.billing.forms import AutoTopupForm, ChangePlanForm, PackForm, RedeemForm, SubscribeForm, first_error
from apps.billing.models import AutoTopup, CreditPack, Plan
from apps.billing.money import money_display
from apps.billing.selectors import (
    CheckoutResult,
    account_of,
    billing_state,
    change_options,
    checkout_result,
    day,
    had_trial,
    pack_offers,
    payment_history,
    plan_offers,
    stripe_invoices,
)
from apps.billing.services import (
    BillingError,
    billing_checkout_pack,
    billing_checkout_reconcile,
    billing_checkout_subscription,
    billing_portal_url,
    billing_subscription_cancel,
    billing_subscription_change,
)
from apps.billing.stripe_api import PaymentsNotConfigured, payments_enabled
from apps.billing.topup import topup_settings_update
from apps.credits.amounts import format_credits
from apps.workspaces.decorators import workspace_required
from apps.workspaces.exceptions import WorkspacePermissionDenied
from apps.workspaces.roles import Perm

if TYPE_CHECKING:
    from apps.core.http import WorkspaceRequest

logger = logging.getLogger(__name__)

HISTORY_PAGE_SIZE = 20
POLL_SECONDS = 2
# About a minute of polling; after that the page says the payment is still being processed
# (a bank debit can take days) and the webhook finishes the job.
POLL_LIMIT = 30
SESSION_ID_RE = re.compile(r"cs_[A-Za-z0-9_]{1,240}")
STRIPE_FAILED = "Stripe could not complete the request. Please try again in a minute."


# ---------------------------------------------------------------------------- helpers


def _absolute(request: HttpRequest, name: str) -> str:
    return request.build_absolute_uri(reverse(name))


def _see_other(url: str) -> HttpResponseRedirect:
    """To Stripe after a POST: 303, so the browser follows with a GET."""
    response = HttpResponseRedirect(url)
    response.status_code = 303
    return response


@dataclass
class Attempt:
    ok: bool = True


@contextmanager
def stripe_errors(request: HttpRequest, workspace_id: int) -> Iterator[Attempt]:
    """Run a billing action; a refusal becomes an error message and `attempt.ok` False."""
    import stripe  # loaded lazily by `stripe_api`; a billing action loads it anyway

    attempt = Attempt()
    try:
        yield attempt
    except (BillingError, PaymentsNotConfigured) as exc:
        attempt.ok = False
        messages.error(request, str(exc))
    except stripe.CardError as exc:
        attempt.ok = False
        messages.error(request, exc.user_message or STRIPE_FAILED)
    except stripe.StripeError as exc:
        attempt.ok = False
        logger.warning("Stripe refused a billing request of workspace %s: %s", workspace_id, exc)
        messages.error(request, STRIPE_FAILED)


def _payments_off(request: HttpRequest, to: str) -> HttpResponse:
    messages.error(request, str(PaymentsNotConfigured()))
    return redirect(to)


def _interval(value: str | None) -> str:
    return Plan.Interval.YEAR if value == Plan.Interval.YEAR else Plan.Interval.MONTH


def _pricing_url(interval: str) -> str:
    url = reverse("billing:pricing")
    return f"{url}?interval=year" if interval == Plan.Interval.YEAR else url


# ---------------------------------------------------------------------------- pricing


@require_GET
def pricing(request: HttpRequest) -> HttpResponse:
    """Public: the plans and credit packs, with buy buttons for the workspace's owner."""
    interval = _interval(request.GET.get("interval"))
    workspace = getattr(request, "workspace", None)
    membership = getattr(request, "membership", None)
    account = account_of(workspace) if workspace is not None else None
    current = plan_for(workspace) if workspace is not None else None
    # Each form gets its own key: one form submitted twice reuses its Checkout session, while
    # two different purchases never share an idempotency key.
    context: dict[str, Any] = {
        "interval": interval,
        "offers": [(offer, uuid.uuid4()) for offer in plan_offers(interval=interval)],
        "packs": [(offer, uuid.uuid4()) for offer in pack_offers()],
        "current_plan": current,
        "subscribed": account is not None and account.has_subscription,
        "current_interval": account.interval if account is not None else "",
        "current_interval_label": account.get_interval_display().lower() if account is not None else "",
        "can_manage_billing": membership is not None and membership.has_perm(Perm.MANAGE_BILLING),
        "payments_enabled": payments_enabled(),
        "trial_available": workspace is None or not (config.BILLING_TRIAL_ONCE and had_trial(workspace)),
    }
    return render(request, "billing/pricing.html", context)


# ---------------------------------------------------------------------------- checkout


def _success_url(request: HttpRequest) -> str:
    # Stripe replaces the placeholder with the session id when it sends the buyer back.
    return _absolute(request, "billing:success") + "?session_id={CHECKOUT_SESSION_ID}"


@workspace_required(Perm.MANAGE_BILLING)
@require_POST
def subscribe(request: WorkspaceRequest) -> HttpResponse:
    plan = get_object_or_404(Plan.objects.filter(is_active=True), code=request.POST.get("plan", ""))
    form = SubscribeForm(request.POST)
    if not form.is_valid():
        messages.error(request, first_error(form))
        return redirect("billing:pricing")
    interval = form.cleaned_data["interval"]
    back = _pricing_url(interval)
    if not payments_enabled():
        return _payments_off(request, back)
    with stripe_errors(request, request.workspace.pk) as attempt:
        url = billing_checkout_subscription(
            workspace=request.workspace,
            acting_user=request.user,
            plan=plan,
            interval=interval,
            success_url=_success_url(request),
            cancel_url=request.build_absolute_uri(back),
            request_key=str(form.cleaned_data["request_key"]),
        )
    if not attempt.ok:
        return redirect(back)
    return _see_other(url)


@workspace_required(Perm.MANAGE_BILLING)
@require_POST
def buy_pack(request: WorkspaceRequest) -> HttpResponse:
    pack = get_object_or_404(CreditPack.objects.filter(is_active=True), code=request.POST.get("pack", ""))
    form = PackForm(request.POST)
    if not form.is_valid():
        messages.error(request, first_error(form))
        return redirect("billing:pricing")
    if not payments_enabled():
        return _payments_off(request, "billing:pricing")
    with stripe_errors(request, request.workspace.pk) as attempt:
        url = billing_checkout_pack(
            workspace=request.workspace,
            acting_user=request.user,
            pack=pack,
            success_url=_success_url(request),
            cancel_url=_absolute(request, "billing:pricing"),
            request_key=str(form.cleaned_data["request_key"]),
        )
    if not attempt.ok:
        return redirect("billing:pricing")
    return _see_other(url)


def _session_id(request: HttpRequest) -> str:
    session_id = request.GET.get("session_id", "")
    if not SESSION_ID_RE.fullmatch(session_id):
        raise Http404("No such checkout.")
    return session_id


def _checkout_progress(request: WorkspaceRequest, session_id: str) -> CheckoutResult:
    """The session's result, fulfilling it now if Stripe says it is complete and the webhook has
    not arrived yet. Another workspace's session (or an unknown one) answers 404."""
    import stripe

    workspace = request.workspace
    result = checkout_result(workspace=workspace, session_id=session_id)
    if result.done:
        return result
    try:
        billing_checkout_reconcile(workspace=workspace, session_id=session_id)
    except BillingError as exc:  # the session belongs to another workspace
        raise Http404("No such checkout.") from exc
    except stripe.InvalidRequestError as exc:
        if exc.http_status == 404:
            raise Http404("No such checkout.") from exc
        logger.warning("Checkout %s could not be reconciled: %s", session_id, exc)
        return result
    except (stripe.StripeError, PaymentsNotConfigured) as exc:
        # The webhook still fulfils it; the page keeps polling meanwhile.
        logger.warning("Checkout %s could not be reconciled: %s", session_id, exc)
        return result
    return checkout_result(workspace=workspace, session_id=session_id)


def _checkout_context(result: CheckoutResult, session_id: str, poll: int) -> dict[str, Any]:
    account = result.account
    plan = account.plan if account is not None else None
    return {
        "result": result,
        "session_id": session_id,
        "plan": plan,
        "credits_added": format_credits(result.pack.credit_units) if result.pack else "",
        "amount_paid": result.pack.amount_display if result.pack else "",
        "next_poll": poll + 1 if not result.done and poll < POLL_LIMIT else None,
        "poll_seconds": POLL_SECONDS,
    }


@workspace_required(Perm.USE)
@require_GET
def success(request: WorkspaceRequest) -> HttpResponse:
    """Back from Checkout: the result, or a "processing" note that polls until it is done."""
    session_id = _session_id(request)
    result = _checkout_progress(request, session_id)
    return render(request, "billing/success.html", _checkout_context(result, session_id, poll=0))


@workspace_required(Perm.USE)
@require_GET
def checkout_status(request: WorkspaceRequest) -> HttpResponse:
    """The success page's status fragment, polled by HTMX until the checkout is fulfilled."""
    session_id = _session_id(request)
    try:
        poll = max(0, min(int(request.GET.get("poll", "0")), POLL_LIMIT))
    except ValueError:
        poll = POLL_LIMIT
    result = _checkout_progress(request, session_id)
    return render(request, "billing/_checkout_status.html", _checkout_context(result, session_id, poll=poll))


# ---------------------------------------------------------------------------- billing page


@workspace_required(Perm.USE)
@require_GET
def overview(request: WorkspaceRequest) -> HttpResponse:
    """The workspace's plan, status, payment method, payments and invoices. Every member can read
    it; owners manage the subscription, owners and admins redeem codes."""
    workspace = request.workspace
    account = account_of(workspace)
    plan = plan_for(workspace)
    can_manage = request.membership.has_perm(Perm.MANAGE_BILLING)
    subscribed = account is not None and account.has_subscription
    page = Paginator(payment_history(workspace), HISTORY_PAGE_SIZE).get_page(request.GET.get("page"))
    context: dict[str, Any] = {
        "account": account,
        "plan": plan,
        "state": billing_state(account, plan),
        "subscribed": subscribed,
        "page_obj": page,
        "invoices": stripe_invoices(account),
        "can_manage_billing": can_manage,
        # Owners and admins (MANAGE_SETTINGS) may redeem codes.
        "can_redeem": request.membership.has_perm(Perm.MANAGE_SETTINGS),
        "payments_enabled": payments_enabled(),
        "change_plans": change_options() if can_manage and subscribed else [],
        "intervals": Plan.Interval.choices,
        "redeem_form": RedeemForm(),
    }
    return render(request, "billing/overview.html", context)


@workspace_required(Perm.MANAGE_BILLING)
@require_POST
def portal(request: WorkspaceRequest) -> HttpResponse:
    if not payments_enabled():
        return _payments_off(request, "billing:overview")
    with stripe_errors(request, request.workspace.pk) as attempt:
        url = billing_portal_url(
            workspace=request.workspace, acting_user=request.user, return_url=_absolute(request, "billing:overview")
        )
    if not attempt.ok:
        return redirect("billing:overview")
    return _see_other(url)


@workspace_required(Perm.MANAGE_BILLING)
@require_http_methods(["GET", "POST"])
def change(request: WorkspaceRequest) -> HttpResponse:
    """GET: the confirmation step (Stripe prorates the change). POST: switch the plan."""
    data = request.POST if request.method == "POST" else request.GET
    plan = get_object_or_404(Plan.objects.filter(is_active=True), code=data.get("plan", ""))
    form = ChangePlanForm(data)
    if not form.is_valid():
        messages.error(request, first_error(form))
        return redirect("billing:overview")
    interval = form.cleaned_data["interval"]
    account = account_of(request.workspace)
    if account is None or not account.has_subscription:
        messages.info(request, "This workspace has no subscription yet: choose a plan to subscribe.")
        return redirect(_pricing_url(interval))
    if account.plan_id == plan.pk and account.interval == interval:
        messages.info(request, f"This workspace is already on {plan.name} ({plan.Interval(interval).label.lower()}).")
        return redirect("billing:overview")
    if not payments_enabled():
        return _payments_off(request, "billing:overview")
    if request.method == "GET":
        current = account.plan
        context = {
            "account": account,
            "current": current,
            "current_price": (
                money_display(current.price_cents(account.interval), current.currency) if current else ""
            ),
            "new_plan": plan,
            "interval": interval,
            "interval_label": Plan.Interval(interval).label.lower(),
            "new_price": money_display(plan.price_cents(interval), plan.currency),
        }
        return render(request, "billing/change_confirm.html", context)
    with stripe_errors(request, request.workspace.pk) as attempt:
        billing_subscription_change(workspace=request.workspace, acting_user=request.user, plan=plan, interval=interval)
    if attempt.ok:
        messages.success(
            request,
            f"The plan is now {plan.name} ({Plan.Interval(interval).label.lower()}). "
            "Stripe prorates the difference on the next invoice.",
        )
    return redirect("billing:overview")


def _cancel_or_resume(request: WorkspaceRequest, *, resume: bool) -> HttpResponse:
    if not payments_enabled():
        return _payments_off(request, "billing:overview")
    with stripe_errors(request, request.workspace.pk) as attempt:
        billing_subscription_cancel(workspace=request.workspace, acting_user=request.user, resume=resume)
    if attempt.ok:
        account = account_of(request.workspace)
        end = account.current_period_end if account is not None else None
        if resume:
            messages.success(request, "The subscription continues and renews automatically.")
        elif end is not None:
            messages.success(request, f"The subscription ends on {day(end)}. You can resume it until then.")
        else:
            messages.success(request, "The subscription ends at the end of the period. You can resume it until then.")
    return redirect("billing:overview")


@workspace_required(Perm.MANAGE_BILLING)
@require_POST
def cancel(request: WorkspaceRequest) -> HttpResponse:
    return _cancel_or_resume(request, resume=False)


@workspace_required(Perm.MANAGE_BILLING)
@require_POST
def resume(request: WorkspaceRequest) -> HttpResponse:
    return _cancel_or_resume(request, resume=True)


# ---------------------------------------------------------------------------- automatic top-up


def _topup_page(
    request: WorkspaceRequest, topup: AutoTopup | None, form: AutoTopupForm, *, status: int = 200
) -> HttpResponse:
    context = {
        "topup": topup,
        "form": form,
        "account": account_of(request.workspace),
        "can_manage_billing": request.membership.has_perm(Perm.MANAGE_BILLING),
        "payments_enabled": payments_enabled(),
    }
    return render(request, "billing/topup.html", context, status=status)


# Owners and admins see it (it sat with the credit settings); only owners (MANAGE_BILLING)
# change it: it spends money.
@workspace_required(Perm.MANAGE_SETTINGS)
@require_http_methods(["GET", "POST"])
def topup(request: WorkspaceRequest) -> HttpResponse:
    current = AutoTopup.objects.select_related("pack").filter(workspace=request.workspace).first()
    if request.method != "POST":
        return _topup_page(request, current, AutoTopupForm.for_topup(current))
    if not request.membership.has_perm(Perm.MANAGE_BILLING):
        return _forbidden(request, "Only owners can change automatic top-up.")
    form = AutoTopupForm(request.POST, current_pack=current.pack if current is not None else None)
    if not form.is_valid():
        return _topup_page(request, current, form, status=400)
    try:
        topup_settings_update(workspace=request.workspace, acting_user=request.user, **form.service_fields())
    except WorkspacePermissionDenied as exc:
        return _forbidden(request, exc.message)
    except BillingError as exc:
        form.add_error(None, exc.message)
        return _topup_page(request, current, form, status=400)
    messages.success(request, "Automatic top-up saved.")
    return redirect("billing:topup")


def _forbidden(request: HttpRequest, reason: str) -> HttpResponse:
    return render(request, "errors/403.html", {"reason": reason}, status=403)


# Owners and admins (MANAGE_SETTINGS): a code grants, it never charges.
@workspace_required(Perm.MANAGE_SETTINGS)
@require_POST
def redeem(request: WorkspaceRequest) -> HttpResponse:
    from apps.billing.codes import CodeError, billing_code_redeem

    form = RedeemForm(request.POST)
    if not form.is_valid():
        messages.error(request, first_error(form))
        return redirect("billing:overview")
    try:
        redemption = billing_code_redeem(
            workspace=request.workspace, acting_user=request.user, code=form.cleaned_data["code"]
        )
    except CodeError as exc:
        messages.error(request, str(exc))
        return redirect("billing:overview")
    code = redemption.code
    gains = []
    if code.credit_units > 0:
        gains.append(f"{format_credits(code.credit_units)} credits added")
    if code.plan is not None:
        days = f" for {code.plan_days} days" if code.plan_days else ""
        gains.append(f"{code.plan.name}{days}")
    messages.success(request, "Code redeemed" + (f": {', '.join(gains)}." if gains else "."))
    return redirect("billing:overview")
