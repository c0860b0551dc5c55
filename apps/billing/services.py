"""Billing actions: Stripe customer, Checkout, the Customer Portal, subscription changes, and
staff assignments. Stripe calls carry idempotency keys; nothing here grants credits for a
payment (that is the webhooks' job, `fulfilment.py`), so a user returning from Checkout and
the webhook can never both grant.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from constance import config
from django.db import transaction
from django.utils import timezone

from apps.audit.services import audit_record
from apps.billing.entitlements import entitlements_forget, entitlements_push, entitlements_push_plan
from apps.billing.fulfilment import account_for_workspace, object_id
from apps.billing.models import BillingAccount, CreditPack, Fulfilment, Plan, PlanSource, SubscriptionStatus
from apps.billing.stripe_api import stripe_client, stripe_options, to_dict
from apps.core.errors import DomainError
from apps.workspaces.models import Membership, Workspace
from apps.workspaces.roles import Role
from apps.workspaces.services import workspace_entitlements_clear

if TYPE_CHECKING:
    from apps.accounts.models import User
    from apps.credits.models import CreditGrant

logger = logging.getLogger(__name__)


class BillingError(DomainError):
    """A billing request that cannot be done, with a message for the user."""

    status_code = 400
    code = "billing_refused"


def billing_account(workspace: Workspace) -> BillingAccount:
    account, _ = BillingAccount.objects.select_related("plan").get_or_create(workspace=workspace)
    return account


def _owner_email(workspace: Workspace, acting_user: User | None) -> str:
    if acting_user is not None and acting_user.email:
        return acting_user.email
    owner = Membership.objects.filter(workspace=workspace, role=Role.OWNER).select_related("user").first()
    return owner.user.email if owner else ""


def billing_customer_ensure(*, workspace: Workspace, acting_user: User | None = None) -> str:
    """The workspace's Stripe customer id, created once (row lock + idempotency key), with the
    address of the person checking out (else the owner's)."""
    account = billing_account(workspace)
    if account.stripe_customer_id:
        return account.stripe_customer_id
    # Durable: the Stripe call below holds this row lock, never a caller's transaction too.
    with transaction.atomic(durable=True):
        # Two first checkouts at once must not make two customers for one workspace.
        account = account_for_workspace(workspace.pk, lock=True)
        if account.stripe_customer_id:
            return account.stripe_customer_id
        customer = stripe_client().v1.customers.create(
            params={
                "name": workspace.name,
                "email": _owner_email(workspace, acting_user),
                "metadata": {"workspace_id": str(workspace.pk), "workspace_slug": workspace.slug},
            },
            options=stripe_options(f"customer:{workspace.pk}"),  # type: ignore[arg-type]
        )
        account.stripe_customer_id = customer.id
        account.save(update_fields=["stripe_customer_id", "updated_at"])
    return account.stripe_customer_id


def _had_trial(workspace: Workspace) -> bool:
    return Fulfilment.objects.filter(workspace=workspace, kind=Fulfilment.Kind.TRIAL).exists()


def _checkout_common(workspace: Workspace, customer: str, success_url: str, cancel_url: str) -> dict[str, Any]:
    params: dict[str, Any] = {
        "customer": customer,
        "client_reference_id": str(workspace.pk),
        "success_url": success_url,
        "cancel_url": cancel_url,
        "customer_update": {"address": "auto", "name": "auto"},
    }
    if config.BILLING_ALLOW_PROMOTION_CODES:
        params["allow_promotion_codes"] = True
    if config.BILLING_AUTOMATIC_TAX:
        params["automatic_tax"] = {"enabled": True}
    return params


def billing_checkout_subscription(
    *,
    workspace: Workspace,
    acting_user: User,
    plan: Plan,
    interval: str,
    success_url: str,
    cancel_url: str,
    request_key: str,
) -> str:
    """A Stripe Checkout Session for subscribing to `plan`; returns its URL. `request_key`
    (one per rendered form) makes a double-submit return the same session."""
    account = billing_account(workspace)
    if account.has_subscription:
        raise BillingError("This workspace already has a subscription: change its plan from the billing page.")
    if not plan.is_active or plan.is_free:
        raise BillingError("This plan cannot be subscribed to.")
    price = plan.stripe_price_id(interval)
    if not price:
        raise BillingError("This plan has no Stripe price for that billing period yet (run `billing sync_stripe`).")
    customer = billing_customer_ensure(workspace=workspace, acting_user=acting_user)
    metadata = {"workspace_id": str(workspace.pk), "plan": plan.code, "interval": interval, "kind": "subscription"}
    subscription_data: dict[str, Any] = {"metadata": metadata}
    params = _checkout_common(workspace, customer, success_url, cancel_url)
    trial = plan.trial_days > 0 and not (config.BILLING_TRIAL_ONCE and _had_trial(workspace))
    if trial:
        subscription_data["trial_period_days"] = plan.trial_days
        if not plan.trial_requires_card:
            params["payment_method_collection"] = "if_required"
            subscription_data["trial_settings"] = {"end_behavior": {"missing_payment_method": "cancel"}}
    params.update(
        mode="subscription",
        line_items=[{"price": price, "quantity": 1}],
        metadata=metadata,
        subscription_data=subscription_data,
    )
    return _checkout_open(
        account=account,
        acting_user=acting_user,
        params=params,
        request_key=request_key,
        audited={"plan": plan.code, "interval": interval},
    )


def _checkout_open(
    *, account: BillingAccount, acting_user: User, params: dict[str, Any], request_key: str, audited: dict[str, Any]
) -> str:
    """Create the Checkout Session (keyed by the rendered form: a double submit gets the same
    one back), audited as `billing.checkout` with `audited` and the session id; its URL."""
    workspace = account.workspace
    session = stripe_client().v1.checkout.sessions.create(
        params=params,  # type: ignore[arg-type]
        options=stripe_options(f"checkout:{workspace.pk}:{request_key}"),  # type: ignore[arg-type]
    )
    audit_record(
        actor=acting_user,
        action="billing.checkout",
        target=account,
        workspace=workspace,
        metadata={**audited, "session": session.id},
    )
    return str(session.url)


def billing_checkout_pack(
    *, workspace: Workspace, acting_user: User, pack: CreditPack, success_url: str, cancel_url: str, request_key: str
) -> str:
    """A Stripe Checkout Session (one-time payment) for a credit pack; returns its URL. The
    credits promised are written into the session, so a later price change cannot alter them."""
    if not pack.is_active:
        raise BillingError("This credit pack is not for sale.")
    customer = billing_customer_ensure(workspace=workspace, acting_user=acting_user)
    metadata = {
        "workspace_id": str(workspace.pk),
        "kind": "pack",
        "pack": pack.code,
        "credit_units": str(pack.credit_units),
        "bonus_units": str(pack.bonus_units),
    }
    line_item: dict[str, Any]
    if pack.stripe_price_id:
        line_item = {"price": pack.stripe_price_id, "quantity": 1}
    else:
        line_item = {
            "price_data": {
                "currency": pack.currency,
                "unit_amount": pack.price_cents,
                "product_data": {"name": pack.name},
                "tax_behavior": config.BILLING_TAX_BEHAVIOR,
            },
            "quantity": 1,
        }
    params = _checkout_common(workspace, customer, success_url, cancel_url)
    params.update(
        mode="payment",
        line_items=[line_item],
        metadata=metadata,
        payment_intent_data={"metadata": metadata, "setup_future_usage": "off_session"},
        invoice_creation={"enabled": True},
    )
    return _checkout_open(
        account=billing_account(workspace),
        acting_user=acting_user,
        params=params,
        request_key=request_key,
        audited={"pack": pack.code},
    )


def billing_checkout_reconcile(*, workspace: Workspace, session_id: str) -> str:
    """On return from Checkout: if the webhook has not arrived yet, fetch the session and
    fulfil it now through the same (idempotent) handler. Returns the session's status."""
    from apps.billing.webhooks import event_record

    session = to_dict(stripe_client().v1.checkout.sessions.retrieve(session_id))
    if str(session.get("client_reference_id") or "") != str(workspace.pk):
        raise BillingError("This checkout belongs to another workspace.")
    if session.get("status") != "complete":
        return str(session.get("status") or "open")
    # A synthetic event id keyed by the session: the webhook's own event, when it comes, is a
    # different row but grants under the same Fulfilment key, so only one of them grants.
    from apps.billing.fulfilment import event_process

    event = event_record(
        {
            "id": f"reconcile_{session['id']}",
            "type": "checkout.session.completed",
            "created": int(session.get("created") or timezone.now().timestamp()),
            "livemode": bool(session.get("livemode")),
            "data": {"object": session},
        },
        mirror=False,
    )
    if event is not None:
        event_process(event_id=event.pk)
    if session.get("mode") == "subscription" and session.get("subscription"):
        billing_subscription_refresh(workspace=workspace, subscription_id=object_id(session["subscription"]))
    return "complete"


def billing_subscription_refresh(*, workspace: Workspace, subscription_id: str = "") -> None:
    """Apply the subscription's current state from Stripe (return from Checkout, reconcile)."""
    from apps.billing.fulfilment import event_process
    from apps.billing.webhooks import event_record

    account = billing_account(workspace)
    subscription_id = subscription_id or account.subscription_id
    if not subscription_id:
        return
    sub = to_dict(stripe_client().v1.subscriptions.retrieve(subscription_id))
    now = timezone.now()
    event = event_record(
        {
            # Unique per refresh (two in one second are two states to apply).
            "id": f"refresh_{subscription_id}_{time.time_ns()}",
            "type": "customer.subscription.updated",
            "created": int(now.timestamp()),
            "livemode": bool(sub.get("livemode")),
            "data": {"object": sub},
        },
        mirror=False,
    )
    if event is not None:
        event_process(event_id=event.pk)


def billing_portal_url(*, workspace: Workspace, acting_user: User, return_url: str) -> str:
    """A Stripe Customer Portal session (payment methods, invoices, cancellation)."""
    customer = billing_customer_ensure(workspace=workspace, acting_user=acting_user)
    session = stripe_client().v1.billing_portal.sessions.create(params={"customer": customer, "return_url": return_url})
    audit_record(actor=acting_user, action="billing.portal", target=billing_account(workspace), workspace=workspace)
    return str(session.url)


def _subscription_item(sub: dict[str, Any]) -> str:
    items = (sub.get("items") or {}).get("data") or []
    if not items:
        raise BillingError("The subscription has no item to change.")
    return str(items[0]["id"])


def billing_subscription_change(*, workspace: Workspace, acting_user: User, plan: Plan, interval: str) -> None:
    """Upgrade or downgrade: swap the subscription's price, prorated as Stripe computes it.
    Our state follows from the `customer.subscription.updated` webhook."""
    account = billing_account(workspace)
    if not account.has_subscription:
        raise BillingError("This workspace has no subscription to change.")
    price = plan.stripe_price_id(interval)
    if not price or not plan.is_active:
        raise BillingError("This plan cannot be subscribed to for that billing period.")
    client = stripe_client()
    item = _subscription_item(to_dict(client.v1.subscriptions.retrieve(account.subscription_id)))
    client.v1.subscriptions.update(
        account.subscription_id,
        params={
            "items": [{"id": item, "price": price}],
            "proration_behavior": "create_prorations",
            "cancel_at_period_end": False,
            "metadata": {"workspace_id": str(workspace.pk), "plan": plan.code, "interval": interval},
        },
        options=stripe_options(f"change:{account.subscription_id}:{price}:{item}"),  # type: ignore[arg-type]
    )
    previous = account.plan.code if account.plan else ""
    audit_record(
        actor=acting_user,
        action="billing.plan_change",
        target=account,
        workspace=workspace,
        metadata={"from": previous, "to": plan.code, "interval": interval},
    )
    billing_subscription_refresh(workspace=workspace)


def billing_subscription_cancel(*, workspace: Workspace, acting_user: User, resume: bool = False) -> None:
    """Cancel at the end of the paid period (or undo that). The plan stays until then; the
    `customer.subscription.deleted` webhook moves the workspace to the free plan."""
    account = billing_account(workspace)
    if not account.has_subscription:
        raise BillingError("This workspace has no subscription.")
    stripe_client().v1.subscriptions.update(account.subscription_id, params={"cancel_at_period_end": not resume})
    audit_record(
        actor=acting_user,
        action="billing.resume" if resume else "billing.cancel",
        target=account,
        workspace=workspace,
        metadata={"subscription": account.subscription_id},
    )
    billing_subscription_refresh(workspace=workspace)


# ---------------------------------------------------------------------------- staff


@transaction.atomic
def billing_plan_assign(
    *,
    workspace: Workspace,
    plan: Plan | None,
    acting_user: User | None,
    days: int | None = None,
    source: str = PlanSource.STAFF,
    reason: str = "",
) -> BillingAccount:
    """Put a workspace on `plan` (None: the default plan), for `days` or until changed, with
    the plan's credits for this month (`billing_plan_credits_start`). A Stripe subscription's own
    plan is left to Stripe: the next subscription event restores it."""
    account = account_for_workspace(workspace.pk, lock=True)
    previous = account.plan.code if account.plan else ""
    account.plan = plan
    account.plan_source = source if plan is not None else PlanSource.DEFAULT
    account.plan_expires_at = timezone.now() + timedelta(days=days) if days else None
    account.restricted = False
    account.save()
    entitlements_push(account=account)
    entitlements_forget(workspace)
    billing_plan_credits_start(workspace=workspace, account=account)
    audit_record(
        actor=acting_user,
        action="billing.plan_assign",
        target=account,
        workspace=workspace,
        metadata={
            "from": previous,
            "to": plan.code if plan else "",
            "days": days,
            "source": source,
            "reason": reason,
        },
    )
    return account


def billing_trial_extend(*, workspace: Workspace, acting_user: User, days: int) -> datetime:
    """Push the trial end `days` further: at Stripe for a trialing subscription, else the end
    of a time-limited plan assignment."""
    if days <= 0:
        raise BillingError("Extend by at least one day.")
    account = billing_account(workspace)
    if account.subscription_status == SubscriptionStatus.TRIALING and account.subscription_id:
        base = account.trial_ends_at or timezone.now()
        new_end = base + timedelta(days=days)
        stripe_client().v1.subscriptions.update(
            account.subscription_id, params={"trial_end": int(new_end.timestamp()), "proration_behavior": "none"}
        )
        BillingAccount.objects.filter(pk=account.pk).update(trial_ends_at=new_end)
    elif account.plan_expires_at is not None:
        with transaction.atomic(durable=True):
            account = account_for_workspace(workspace.pk, lock=True)
            if account.plan_expires_at is None:  # the plan ended meanwhile (hourly expiry)
                raise BillingError("This workspace is not on a trial or a time-limited plan.")
            new_end = max(account.plan_expires_at, timezone.now()) + timedelta(days=days)
            account.plan_expires_at = new_end
            account.save(update_fields=["plan_expires_at", "updated_at"])
            entitlements_push(account=account)
        entitlements_forget(workspace)
    else:
        raise BillingError("This workspace is not on a trial or a time-limited plan.")
    audit_record(
        actor=acting_user,
        action="billing.trial_extend",
        target=account,
        workspace=workspace,
        metadata={"days": days, "until": new_end.isoformat()},
    )
    return new_end


@transaction.atomic(savepoint=False)  # inside the admin's save transaction
def billing_plan_save(*, plan: Plan, changed: list[str], acting_user: User | None) -> Plan:
    """Store a plan edited by staff. The workspaces on it (and the default row) read the new
    limits as soon as it is saved (`entitlements_push_plan`, in this transaction); the audit
    row names the fields changed."""
    created = plan._state.adding
    plan.save()
    entitlements_push_plan(plan=plan)
    _catalogue_audit(obj=plan, kind="plan", created=created, changed=changed, acting_user=acting_user)
    return plan


@transaction.atomic(savepoint=False)  # inside the admin's save transaction
def billing_pack_save(*, pack: CreditPack, changed: list[str], acting_user: User | None) -> CreditPack:
    """Store a credit pack edited by staff (`billing sync_stripe` pushes it to Stripe); the
    audit row names the fields changed."""
    created = pack._state.adding
    pack.save()
    _catalogue_audit(obj=pack, kind="pack", created=created, changed=changed, acting_user=acting_user)
    return pack


def _catalogue_audit(
    *, obj: Plan | CreditPack, kind: str, created: bool, changed: list[str], acting_user: User | None
) -> None:
    audit_record(
        actor=acting_user,
        action=f"billing.{kind}_create" if created else f"billing.{kind}_change",
        target=obj,
        metadata={"code": obj.code, "fields": sorted(changed)},
    )


def billing_account_open(*, workspace: Workspace, acting_user: User | None) -> BillingAccount:
    """The workspace's billing account, opened by staff if it had none yet (audited either way:
    staff asked for it)."""
    account = billing_account(workspace)
    audit_record(actor=acting_user, action="billing.account_open", target=account, workspace=workspace)
    return account


def billing_restrict_overdue(*, now: datetime | None = None) -> int:
    """Workspaces whose grace period after a failed payment has run out lose their paid plan's
    features (credits are kept) until an invoice is paid. Returns how many were restricted."""
    from apps.billing.emails import send_restricted

    now = now or timezone.now()
    with transaction.atomic(durable=True):
        # Locked until the restriction and its push commit: a payment handled meanwhile (which
        # lifts the restriction under the same row lock) comes after, not in between.
        overdue = BillingAccount.objects.select_for_update().filter(
            restricted=False, grace_until__lte=now, payment_failed_at__isnull=False
        )
        ids = list(overdue.values_list("workspace_id", flat=True))
        BillingAccount.objects.filter(workspace_id__in=ids, restricted=False).update(restricted=True)
        # Restricted: no plan of their own in force, the default plan's entitlements apply.
        workspace_entitlements_clear(workspaces=Workspace.objects.filter(pk__in=ids))
        for workspace_id in ids:
            transaction.on_commit(partial(send_restricted, workspace_id), robust=True)
    return len(ids)


def billing_plan_expire(*, now: datetime | None = None) -> int:
    """Time-limited plans (staff, codes) past their end go back to the default plan. The
    lower layers already read the default since the expiry (the pushed rows carry it); this
    tidies the rows away with the plans."""
    now = now or timezone.now()
    with transaction.atomic(durable=True):
        # Locked: a plan assigned meanwhile (under the same row lock) is not wiped by this.
        expired = (
            BillingAccount.objects.select_for_update()
            .filter(plan_expires_at__lte=now)
            .exclude(plan_source=PlanSource.STRIPE)
        )
        ids = list(expired.values_list("workspace_id", flat=True))
        count = BillingAccount.objects.filter(workspace_id__in=ids).update(
            plan=None, plan_source=PlanSource.DEFAULT, plan_expires_at=None
        )
        workspace_entitlements_clear(workspaces=Workspace.objects.filter(pk__in=ids))
    return count


# ---------------------------------------------------------------------------- plan monthly credits

PLAN_MONTH_PREFIX = "plan-month:"


def month_start(now: datetime) -> datetime:
    """The first instant of `now`'s calendar month (UTC, as stored)."""
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def plan_month_key(*, workspace_id: int, plan: Plan, month: datetime) -> str:
    """The idempotency key of a plan's monthly credits for one workspace and month. The hourly
    task and a plan change (`billing_plan_credits_start`) use the same key, so a workspace gets
    each plan's credits at most once a month, whichever comes first."""
    return f"{PLAN_MONTH_PREFIX}{month:%Y-%m}:{workspace_id}:{plan.pk}"


def _granted_workspace_id(key: str, prefix: str) -> int | None:
    """The workspace of a month's key (`<prefix><workspace>:<plan>`, or `<prefix><workspace>`
    as written before keys named the plan)."""
    head = key.removeprefix(prefix).split(":", 1)[0]
    return int(head) if head.isdigit() else None


def _plan_with_monthly_credits(account: BillingAccount | None, default: Plan | None) -> Plan | None:
    """The plan whose monthly credits billing grants the workspace, or None: paid through a
    Stripe subscription (its invoices grant the period's credits), or a plan without any."""
    from apps.billing.entitlements import plan_of

    if account is not None and account.plan_source == PlanSource.STRIPE and account.has_subscription:
        return None
    plan = plan_of(account, default)
    return plan if plan is not None and plan.monthly_credit_units > 0 else None


def _plan_month_grant(*, workspace: Workspace, plan: Plan, month: datetime) -> CreditGrant:
    from apps.billing.fulfilment import add_months
    from apps.credits.amounts import to_credits
    from apps.credits.models import Source
    from apps.credits.services import credits_grant

    return credits_grant(
        workspace=workspace,
        amount=to_credits(plan.monthly_credit_units),
        source=Source.SUBSCRIPTION,
        idempotency_key=plan_month_key(workspace_id=workspace.pk, plan=plan, month=month),
        expires_at=add_months(month, 1),
        reason=f"{plan.name}: credits for {month:%B %Y}",
        replace_source=True,
    )


def billing_plan_credits_start(
    *, workspace: Workspace, account: BillingAccount | None, now: datetime | None = None
) -> CreditGrant | None:
    """This month's credits of the plan the workspace is now on, at once: when it is created
    (on the default plan) or moves to another plan (staff, a redeemed code), rather than at the
    next run of the hourly task (which `make run` does not start). Replaces what is left of the
    previous plan's monthly credits. Once per workspace, plan and month (the task's key): a
    second call, and the task afterwards, grant nothing. `account`: the workspace's billing
    account as just changed, None when it has none (a new workspace). Returns the new grant."""
    from apps.credits.models import CreditGrant

    plan = _plan_with_monthly_credits(account, Plan.objects.filter(is_default=True).first())
    if plan is None:
        return None
    month = month_start(now or timezone.now())
    if CreditGrant.objects.filter(
        idempotency_key=plan_month_key(workspace_id=workspace.pk, plan=plan, month=month)
    ).exists():
        return None
    return _plan_month_grant(workspace=workspace, plan=plan, month=month)


def billing_plan_monthly_credits(*, now: datetime | None = None) -> int:
    """Monthly credits of plans not billed through Stripe — the default (free) plan, and plans
    staff or a code assigned: each workspace on one gets them once per calendar month (UTC),
    replacing what was left of the previous month's. A workspace that already got a plan's
    credits this month (created or moved to a plan meanwhile: `billing_plan_credits_start`) is
    done. Returns how many workspaces got credits."""
    from apps.billing.entitlements import loaded_account
    from apps.credits.models import CreditGrant

    month = month_start(now or timezone.now())
    prefix = f"{PLAN_MONTH_PREFIX}{month:%Y-%m}:"
    if not Plan.objects.filter(monthly_credit_units__gt=0).exists():
        return 0
    keys = CreditGrant.objects.filter(idempotency_key__startswith=prefix).values_list("idempotency_key", flat=True)
    done = {workspace_id for key in keys if (workspace_id := _granted_workspace_id(key, prefix)) is not None}
    default = Plan.objects.filter(is_default=True).first()
    granted = 0
    # Accounts and plans come with the workspaces: one query per chunk, not per workspace.
    workspaces = Workspace.objects.active().exclude(pk__in=done).select_related("billing__plan")
    for workspace in workspaces.iterator(chunk_size=500):
        _, account = loaded_account(workspace)
        plan = _plan_with_monthly_credits(account, default)
        if plan is None:
            continue
        _plan_month_grant(workspace=workspace, plan=plan, month=month)
        granted += 1
    return granted
