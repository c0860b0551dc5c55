from __future__ import annotations

import os
from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction

from apps.accounts.models import User
from apps.accounts.services import user_create
from apps.workspaces.models import Workspace

STAFF_EMAIL = "admin@aikeedo.local"
DEMO_EMAIL = "demo@aikeedo.local"
DEMO_TEAM = "Demo Team"


class Command(BaseCommand):
    help = (
        "Create the demo data a fresh install needs: a staff superuser and a demo user with a "
        "verified email and workspaces. Run after `migrate`; safe to run again (changes nothing "
        "that exists). Passwords come from DEMO_ADMIN_PASSWORD / DEMO_USER_PASSWORD."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        admin_password = os.environ.get("DEMO_ADMIN_PASSWORD", "admin-demo-pass")
        demo_password = os.environ.get("DEMO_USER_PASSWORD", "demo-user-pass")
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
            if not Workspace.objects.for_user(demo).filter(name=DEMO_TEAM).exists():
                from apps.workspaces.services import workspace_create

                workspace_create(user=demo, name=DEMO_TEAM)
                created.append(DEMO_TEAM)
        summary = f"seed_demo: created {', '.join(created)}" if created else "seed_demo: demo data already present"
        self.stdout.write(summary)
        self.stdout.write(f"  staff login: {STAFF_EMAIL} / {admin_password}  (admin at /admin/)")
        self.stdout.write(f"  demo login:  {DEMO_EMAIL} / {demo_password}")
