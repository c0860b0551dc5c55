"""`manage.py billing <seed_plans|sync_stripe|reconcile|webhook>`: setting up and checking
payments. Every subcommand is safe to run again."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser
from django.urls import reverse
from django.utils import timezone

from apps.billing.fulfilment import event_process
from apps.billing.models import CreditPack, Fulfilment, Plan, StripeEvent
from apps.billing.seed import billing_seed_catalogue
from apps.billing.stripe_api import PaymentsNotConfigured, stripe_client, stripe_options, to_dict
from apps.core.commands import SubcommandCommand

if TYPE_CHECKING:
    import stripe

HELP = """Payments setup and checks. Subcommands:

  seed_plans   Create the default plans (Free, Starter, Professional, Enterprise) and credit
               packs where missing. Run once on a new site; never overwrites admin edits.
  sync_stripe  Create or update the Stripe products and prices of the active paid plans and
               credit packs. Run after setting the Stripe keys and after every price change
               in the admin (a changed price becomes a new Stripe price; the old one is
               archived, and existing subscribers keep it until they change plan).
  reconcile    Compare recent paid Checkout sessions and subscription invoices at Stripe with
               our fulfilments and list what is missing (a webhook lost or failing), and our
               failed events. Run after a webhook outage, or daily from cron. --fix fulfils
               the missing ones (each grants once, whatever runs later).
  webhook      Register the webhook signing secret with dj-stripe and print the URL to enter
               in Stripe (Developers → Webhooks). Run once per site and after rotating the
               secret; the URL stays the same.

`manage.py billing <subcommand> --help` shows each one's options."""


def _client() -> stripe.StripeClient:
    try:
        return stripe_client()
    except PaymentsNotConfigured as exc:
        raise CommandError(
            "Stripe is not configured: set STRIPE_TEST_SECRET_KEY (or STRIPE_LIVE_SECRET_KEY with "
            "STRIPE_LIVE_MODE=true) and run this again."
        ) from exc


class Command(SubcommandCommand):
    help = HELP

    def add_arguments(self, parser: CommandParser) -> None:
        commands = self.subcommands(parser)
        commands.add_parser(
            "seed_plans",
            help="Create the default plans and credit packs where missing.",
            description="Create the default plans and credit packs that do not exist yet (by code). "
            "Existing ones are left as staff edited them.",
        )
        commands.add_parser(
            "sync_stripe",
            help="Create or update Stripe products and prices from the catalogue.",
            description="For each active paid plan and credit pack: create its Stripe product once (or "
            "update its name and description), and a price per billing interval. A price whose amount or "
            "currency changed is replaced by a new price and the old one archived. A second run changes "
            "nothing.",
        )
        reconcile = commands.add_parser(
            "reconcile",
            help="Find paid Stripe sessions and invoices we have not fulfilled.",
            description="List completed credit-pack Checkout sessions and paid subscription invoices of the "
            "last days with no fulfilment here, and our failed Stripe events.",
        )
        reconcile.add_argument("--days", type=int, default=7, help="How far back to look (default 7).")
        reconcile.add_argument("--fix", action="store_true", help="Fulfil the missing ones now.")
        webhook = commands.add_parser(
            "webhook",
            help="Register the webhook endpoint with dj-stripe and print its URL.",
            description="Create or update the local webhook endpoint (its signing secret) and print the URL "
            "to configure in the Stripe dashboard. Re-running keeps the same URL.",
        )
        webhook.add_argument(
            "--secret", default="", help="Signing secret (whsec_…); default: the STRIPE_WEBHOOK_SECRET setting."
        )
        webhook.add_argument(
            "--url", default="", help="This site's address, e.g. https://example.com (default: SITE_URL)."
        )
        webhook.add_argument("--id", default="we_local", help="Local id of the endpoint (default we_local).")

    # ------------------------------------------------------------------------ seed_plans

    def handle_seed_plans(self, options: dict[str, Any]) -> None:
        created = billing_seed_catalogue()
        self.summary(
            f"created {created['plans']} plan(s) and {created['packs']} credit pack(s); "
            f"the catalogue has {Plan.objects.count()} plan(s) and {CreditPack.objects.count()} pack(s)."
        )

    # ------------------------------------------------------------------------ sync_stripe

    def handle_sync_stripe(self, options: dict[str, Any]) -> None:
        import stripe

        client = _client()
        sync = _Sync(client, log=self._detail if options["verbosity"] > 1 else None)
        try:
            for plan in Plan.objects.filter(is_active=True).order_by("sort_order", "id"):
                if not plan.is_free:
                    sync.plan(plan)
            for pack in CreditPack.objects.filter(is_active=True).order_by("sort_order", "id"):
                sync.pack(pack)
        except stripe.StripeError as exc:
            raise CommandError(f"billing sync_stripe: Stripe refused a request: {exc.user_message or exc}") from exc
        c = sync.counts
        self.summary(
            f"products {c['product_created']} created, {c['product_updated']} updated, "
            f"{c['product_unchanged']} unchanged; prices {c['price_created']} created, "
            f"{c['price_archived']} archived, {c['price_unchanged']} unchanged."
        )

    def _detail(self, line: str) -> None:
        self.stdout.write(f"  {line}")

    # ------------------------------------------------------------------------ reconcile

    def handle_reconcile(self, options: dict[str, Any]) -> None:
        import stripe

        days = options["days"]
        if days < 1:
            raise CommandError("--days must be at least 1.")
        client = _client()
        since = int((timezone.now() - timedelta(days=days)).timestamp())
        try:
            sessions = client.v1.checkout.sessions.list(
                params={"created": {"gte": since}, "status": "complete", "limit": 100}
            )
            invoices = client.v1.invoices.list(params={"created": {"gte": since}, "status": "paid", "limit": 100})
            expected = [*_pack_sessions(sessions.auto_paging_iter()), *_paid_invoices(invoices.auto_paging_iter())]
        except stripe.StripeError as exc:
            raise CommandError(f"billing reconcile: Stripe refused a request: {exc.user_message or exc}") from exc
        done = set(Fulfilment.objects.filter(key__in=[key for key, _, _ in expected]).values_list("key", flat=True))
        missing = [(key, event_type, obj) for key, event_type, obj in expected if key not in done]
        fixed = 0
        for key, event_type, obj in missing:
            state = ""
            if options["fix"]:
                status = _fulfil(event_type, obj)
                done_now = Fulfilment.objects.filter(key=key).exists()
                fixed += done_now
                state = " → fulfilled" if done_now else f" → not fulfilled (event {status})"
            self.stdout.write(f"  missing {key} ({_describe(obj)}){state}")
        failed = list(StripeEvent.objects.filter(status=StripeEvent.Status.FAILED).order_by("created", "id")[:50])
        for event in failed:
            self.stdout.write(
                f"  failed event {event.stripe_id} ({event.type}, {event.attempts} attempt(s)): "
                f"{event.last_error[:200]}"
            )
        failed_count = StripeEvent.objects.filter(status=StripeEvent.Status.FAILED).count()
        fixes = f", {fixed} fixed" if options["fix"] else ""
        self.summary(
            f"{len(expected)} paid object(s) in the last {days} day(s), "
            f"{len(missing)} without fulfilment{fixes}; {failed_count} failed event(s)."
        )

    # ------------------------------------------------------------------------ webhook

    def handle_webhook(self, options: dict[str, Any]) -> None:
        import stripe
        from djstripe.models import WebhookEndpoint

        secret = (options["secret"] or settings.STRIPE_WEBHOOK_SECRET).strip()
        if not secret.startswith("whsec_"):
            raise CommandError(
                "Give the endpoint's signing secret (whsec_…) with --secret or the STRIPE_WEBHOOK_SECRET setting."
            )
        base = (options["url"] or getattr(settings, "SITE_URL", "")).strip().rstrip("/")
        if not base.startswith(("https://", "http://")):
            raise CommandError("Give this site's address with --url, e.g. --url https://example.com")
        endpoint = WebhookEndpoint.objects.filter(id=options["id"]).first()
        created = endpoint is None
        if endpoint is None:
            endpoint = WebhookEndpoint(id=options["id"], djstripe_uuid=uuid.uuid4())
        path = reverse("djstripe:djstripe_webhook_by_uuid", kwargs={"uuid": endpoint.djstripe_uuid})
        endpoint.url = f"{base}{path}"
        endpoint.secret = secret
        endpoint.enabled_events = ["*"]
        endpoint.status = "enabled"
        endpoint.livemode = bool(settings.STRIPE_LIVE_MODE)
        endpoint.api_version = stripe.api_version
        endpoint.save()
        self.summary(
            f"endpoint {endpoint.id} {'created' if created else 'updated'}; "
            f"in Stripe (Developers → Webhooks) send all events to {endpoint.url}"
        )


# ---------------------------------------------------------------------------- sync helpers


def _retrieve(service: Any, object_id: str) -> dict[str, Any] | None:
    """The Stripe object, or None when Stripe does not know it (made in the other mode, or
    deleted)."""
    import stripe

    try:
        return to_dict(service.retrieve(object_id))
    except stripe.InvalidRequestError as exc:
        if exc.code == "resource_missing" or exc.http_status == 404:
            return None
        raise


class _Sync:
    """Pushes catalogue objects to Stripe. Idempotency keys name the object, its code, amount
    and currency (and the price it replaces), so a run that crashed after Stripe created
    something and before we stored its id gets the same object back when run again."""

    def __init__(self, client: stripe.StripeClient, log: Callable[[str], None] | None) -> None:
        from constance import config

        self.client = client
        self.counts: Counter[str] = Counter()
        self.tax_behavior = str(config.BILLING_TAX_BEHAVIOR)
        self.log = log or (lambda line: None)

    def plan(self, plan: Plan) -> None:
        product = self.product(
            kind="plan",
            code=plan.code,
            current=plan.stripe_product_id,
            name=plan.name,
            description=plan.description,
        )
        if product != plan.stripe_product_id:
            Plan.objects.filter(pk=plan.pk).update(stripe_product_id=product)
        for interval, field in (
            (Plan.Interval.MONTH, "stripe_price_monthly_id"),
            (Plan.Interval.YEAR, "stripe_price_yearly_id"),
        ):
            amount = plan.price_cents(interval)
            if amount <= 0:  # not sold for this interval (any more)
                if getattr(plan, field):
                    self.archive(getattr(plan, field), owner=f"plan:{plan.code}:{interval}")
                    Plan.objects.filter(pk=plan.pk).update(**{field: ""})
                continue
            price = self.price(
                owner=f"plan:{plan.code}:{interval}",
                current=getattr(plan, field),
                product=product,
                amount=amount,
                currency=plan.currency,
                lookup_key=f"{plan.code}_{interval}",
                recurring=interval,
                nickname=f"{plan.name} ({Plan.Interval(interval).label.lower()})",
                metadata={"plan": plan.code, "interval": interval},
            )
            if price != getattr(plan, field):
                Plan.objects.filter(pk=plan.pk).update(**{field: price})

    def pack(self, pack: CreditPack) -> None:
        product = self.product(
            kind="pack", code=pack.code, current=pack.stripe_product_id, name=pack.name, description=""
        )
        price = self.price(
            owner=f"pack:{pack.code}",
            current=pack.stripe_price_id,
            product=product,
            amount=pack.price_cents,
            currency=pack.currency,
            lookup_key=f"pack_{pack.code}",
            recurring=None,
            nickname=pack.name,
            metadata={"pack": pack.code},
        )
        if (product, price) != (pack.stripe_product_id, pack.stripe_price_id):
            CreditPack.objects.filter(pk=pack.pk).update(stripe_product_id=product, stripe_price_id=price)

    def product(self, *, kind: str, code: str, current: str, name: str, description: str) -> str:
        existing = _retrieve(self.client.v1.products, current) if current else None
        if existing is not None:
            wanted = {"name": name, "description": description, "active": True}
            have = {
                "name": existing.get("name"),
                "description": existing.get("description") or "",
                "active": bool(existing.get("active", True)),
            }
            if have == wanted:
                self.counts["product_unchanged"] += 1
            else:
                # An empty description is how Stripe unsets it on update.
                self.client.v1.products.update(current, params=wanted)  # type: ignore[arg-type]
                self.counts["product_updated"] += 1
                self.log(f"product {current} ({kind} {code}) updated")
            return current
        params: dict[str, Any] = {"name": name, "metadata": {kind: code}}
        if description:
            params["description"] = description
        created = self.client.v1.products.create(
            params=params,  # type: ignore[arg-type]
            options=stripe_options(f"sync:product:{kind}:{code}"),  # type: ignore[arg-type]
        )
        self.counts["product_created"] += 1
        self.log(f"product {created.id} ({kind} {code}) created")
        return str(created.id)

    def price(
        self,
        *,
        owner: str,
        current: str,
        product: str,
        amount: int,
        currency: str,
        lookup_key: str,
        recurring: str | None,
        nickname: str,
        metadata: dict[str, str],
    ) -> str:
        currency = currency.lower()
        existing = _retrieve(self.client.v1.prices, current) if current else None
        if existing is not None and _price_matches(existing, product, amount, currency, recurring):
            self.counts["price_unchanged"] += 1
            return current
        params: dict[str, Any] = {
            "product": product,
            "currency": currency,
            "unit_amount": amount,
            "tax_behavior": self.tax_behavior,
            "lookup_key": lookup_key,
            "transfer_lookup_key": True,  # the lookup key moves from the price this replaces
            "nickname": nickname,
            "metadata": metadata,
        }
        if recurring:
            params["recurring"] = {"interval": recurring}
        # Keyed by what it replaces too: going back to an earlier amount makes a new price
        # instead of getting the archived one back.
        key = f"sync:price:{owner}:{amount}:{currency}:{current if existing is not None else 'new'}"
        created = self.client.v1.prices.create(params=params, options=stripe_options(key))  # type: ignore[arg-type]
        self.counts["price_created"] += 1
        self.log(f"price {created.id} ({owner}, {amount} {currency}) created")
        if existing is not None:
            # Prices are immutable: the old one is archived; subscriptions on it carry on.
            self.archive(current, owner=owner, price=existing)
        return str(created.id)

    def archive(self, price_id: str, *, owner: str, price: dict[str, Any] | None = None) -> None:
        """Stop selling a price (Stripe keeps it for the subscriptions on it)."""
        price = price if price is not None else _retrieve(self.client.v1.prices, price_id)
        if price is None or price.get("active") is False:
            return
        self.client.v1.prices.update(price_id, params={"active": False})
        self.counts["price_archived"] += 1
        self.log(f"price {price_id} ({owner}) archived")


def _price_matches(price: dict[str, Any], product: str, amount: int, currency: str, recurring: str | None) -> bool:
    interval = (price.get("recurring") or {}).get("interval")
    return (
        price.get("active") is not False
        and str(price.get("product") or "") == product
        and int(price.get("unit_amount") or 0) == amount
        and str(price.get("currency") or "").lower() == currency
        and (interval or None) == recurring
    )


# ---------------------------------------------------------------------------- reconcile helpers


def _pack_sessions(sessions: Iterable[Any]) -> Iterable[tuple[str, str, dict[str, Any]]]:
    """Completed, paid credit-pack Checkout sessions, as (fulfilment key, event type, object)."""
    for session in sessions:
        obj = to_dict(session)
        if obj.get("mode") != "payment" or (obj.get("metadata") or {}).get("kind") != "pack":
            continue
        if obj.get("status") != "complete" or obj.get("payment_status") not in ("paid", "no_payment_required"):
            continue
        yield f"pack:{obj['id']}", "checkout.session.completed", obj


def _paid_invoices(invoices: Iterable[Any]) -> Iterable[tuple[str, str, dict[str, Any]]]:
    """Paid subscription invoices with an amount (a trial's 0 invoice grants nothing)."""
    for invoice in invoices:
        obj = to_dict(invoice)
        details = (obj.get("parent") or {}).get("subscription_details") or obj.get("subscription_details") or {}
        if not (obj.get("subscription") or details.get("subscription")):
            continue
        if obj.get("status") != "paid" or int(obj.get("amount_paid") or 0) <= 0:
            continue
        yield f"invoice:{obj['id']}", "invoice.paid", obj


def _fulfil(event_type: str, obj: dict[str, Any]) -> str:
    """Run the webhook's own handler on the fetched object, as a synthetic event keyed by it
    (the real event, if it ever comes, grants under the same fulfilment key: once)."""
    from apps.billing.webhooks import event_record

    event = event_record(
        {
            "id": f"reconcile_{obj['id']}",
            "type": event_type,
            "created": int(obj.get("created") or timezone.now().timestamp()),
            "livemode": bool(obj.get("livemode")),
            "data": {"object": obj},
        },
        mirror=False,
    )
    if event is None:
        return "not recorded"
    return str(event_process(event_id=event.pk).status)


def _describe(obj: dict[str, Any]) -> str:
    from apps.billing.money import money_display

    amount = obj.get("amount_total") if obj.get("object") == "checkout.session" else obj.get("amount_paid")
    workspace = (obj.get("metadata") or {}).get("workspace_id") or obj.get("client_reference_id") or "?"
    created = datetime.fromtimestamp(int(obj.get("created") or 0), tz=UTC)
    return (
        f"{money_display(int(amount or 0), str(obj.get('currency') or 'usd'))}, customer "
        f"{obj.get('customer') or '-'}, workspace {workspace}, {created:%Y-%m-%d %H:%M} UTC"
    )
