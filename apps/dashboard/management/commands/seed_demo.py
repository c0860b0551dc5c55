from __future__ import annotations

import os
import secrets
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction

from apps.accounts.models import User
from apps.accounts.services import user_create
from apps.billing.models import Plan
from apps.billing.seed import billing_seed_catalogue
from apps.billing.selectors import account_of
from apps.billing.services import billing_account, billing_plan_assign, billing_plan_credits_start
from apps.credits.rates import rate_cards_seed_defaults
from apps.credits.services import credits_grant
from apps.presets.library import presets_seed_library
from apps.workspaces.models import Workspace
from apps.workspaces.services import workspace_create

STAFF_EMAIL = "admin@aikeedo.local"
DEMO_EMAIL = "demo@aikeedo.local"
DEMO_TEAM = "Demo Team"
DEMO_CREDITS = "500"


def _password(variable: str, development_default: str) -> tuple[str, bool]:
    """The password from the environment; the documented default in development; otherwise a
    random one (a deployment never gets a superuser with a published password)."""
    value = os.environ.get(variable)
    if value:
        return value, True
    if settings.DEBUG:
        return development_default, True
    return secrets.token_urlsafe(12), False


class Command(BaseCommand):
    help = (
        "Create the demo data a fresh install needs: a staff superuser, a demo user with a "
        "verified email and workspaces, and default prices for the built-in models. Run after "
        "`migrate`; safe to run again (changes nothing that exists). Passwords come from "
        "DEMO_ADMIN_PASSWORD / DEMO_USER_PASSWORD; unset, development uses the documented demo "
        "passwords and other settings a random one, printed once."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        admin_password, admin_known = _password("DEMO_ADMIN_PASSWORD", "admin-demo-pass")
        demo_password, demo_known = _password("DEMO_USER_PASSWORD", "demo-user-pass")
        created = []
        with transaction.atomic():
            if not User.objects.filter(email=STAFF_EMAIL).exists():
                user_create(
                    email=STAFF_EMAIL,
                    password=admin_password,
                    verified=True,
                    is_staff=True,
                    is_superuser=True,
                    display_name="Staff",
                )
                created.append(STAFF_EMAIL)
            demo = User.objects.filter(email=DEMO_EMAIL).first()
            if demo is None:
                demo = user_create(email=DEMO_EMAIL, password=demo_password, verified=True, display_name="Demo User")
                created.append(DEMO_EMAIL)
            # Plans and credit packs first: workspace limits come from the plans.
            catalogue = billing_seed_catalogue()
            if not Workspace.objects.for_user(demo).filter(name=DEMO_TEAM).exists():
                workspace_create(acting_user=demo, name=DEMO_TEAM)
                created.append(DEMO_TEAM)
            # Only models without prices get the defaults: prices set in the admin stay.
            rate_cards = rate_cards_seed_defaults()
            # The preset library: only the presets missing by name (staff edits stay).
            library = presets_seed_library()
            # Demo credits so the demo user can chat right away (the key makes it once only).
            for workspace in Workspace.objects.for_user(demo):
                credits_grant(
                    workspace=workspace,
                    amount=DEMO_CREDITS,
                    source="bonus",
                    idempotency_key=f"seed-demo:{workspace.pk}",
                    reason="Demo credits",
                )
                # This month's credits of its plan: the demo's first workspace was made before the plans.
                billing_plan_credits_start(workspace=workspace, account=account_of(workspace))
            # The demo team shows every feature (voice cloning is a Professional feature).
            team = Workspace.objects.for_user(demo).filter(name=DEMO_TEAM).first()
            professional = Plan.objects.filter(code="professional").first()
            if team is not None and professional is not None and billing_account(team).plan_id is None:
                billing_plan_assign(workspace=team, plan=professional, acting_user=None, reason="Demo workspace")
        summary = f"seed_demo: created {', '.join(created)}" if created else "seed_demo: demo data already present"
        self.stdout.write(summary)
        unchanged = "(password set when first created)"
        shown_admin = admin_password if admin_known or STAFF_EMAIL in created else unchanged
        shown_demo = demo_password if demo_known or DEMO_EMAIL in created else unchanged
        self.stdout.write(f"  staff login: {STAFF_EMAIL} / {shown_admin}  (admin at /admin/)")
        self.stdout.write(f"  demo login:  {DEMO_EMAIL} / {shown_demo}")
        if catalogue["plans"] or catalogue["packs"]:
            plans, packs = catalogue["plans"], catalogue["packs"]
            self.stdout.write(f"  billing:     {plans} plan(s) and {packs} credit pack(s) created")
        if library:
            self.stdout.write(f"  presets:     {library} library preset(s) created")
        if rate_cards:
            self.stdout.write(f"  rate cards:  default prices published for {len(rate_cards)} model(s)")
