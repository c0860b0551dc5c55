"""The starting catalogue: the Free / Starter / Professional / Enterprise tiers and three
credit packs. Created only where missing (by code), so re-running never overwrites what staff
changed in the admin."""

from __future__ import annotations

from typing import Any

from apps.billing.entitlements import entitlements_push_default
from apps.billing.models import CreditPack, Plan
from apps.credits.amounts import to_units

PLANS: list[dict[str, Any]] = [
    {
        "code": "free",
        "name": "Free",
        "description": "Try every tool with a small monthly allowance.",
        "features": ["Basic AI models", "Chat, images, speech and transcription", "Community support"],
        "price_monthly_cents": 0,
        "price_yearly_cents": 0,
        "monthly_credit_units": to_units(50),
        "voice_cloning": False,
        "api_access": False,
        "max_workspaces": 2,
        "max_members": 3,
        "max_documents": 50,
        "storage_mb": 500,
        "upload_max_mb": 10,
        "result_retention_days": 30,
        "rate_limits": {"user_rpm": 20, "workspace_rpm": 30},
        "is_default": True,
        "sort_order": 0,
    },
    {
        "code": "starter",
        "name": "Starter",
        "description": "For individuals using AI every day.",
        "features": ["Most AI models", "Developer API", "Email support"],
        "price_monthly_cents": 1900,
        "price_yearly_cents": 19000,
        "monthly_credit_units": to_units(1000),
        "trial_days": 7,
        "trial_credit_units": to_units(100),
        "trial_requires_card": True,
        "voice_cloning": False,
        "api_access": True,
        "max_workspaces": 3,
        "max_members": 5,
        "storage_mb": 5_000,
        "upload_max_mb": 25,
        "sort_order": 10,
    },
    {
        "code": "professional",
        "name": "Professional",
        "description": "For teams and power users.",
        "features": ["All AI models", "Custom voice cloning", "Priority support"],
        "price_monthly_cents": 4900,
        "price_yearly_cents": 49000,
        "monthly_credit_units": to_units(5000),
        "trial_days": 14,
        "trial_credit_units": to_units(250),
        "voice_cloning": True,
        "api_access": True,
        "max_workspaces": 10,
        "max_members": 25,
        "storage_mb": 50_000,
        "upload_max_mb": 25,
        "sort_order": 20,
    },
    {
        "code": "enterprise",
        "name": "Enterprise",
        "description": "Custom allocation, dedicated support and SLA.",
        "features": ["Custom credit allocation", "Dedicated support", "SLA guarantees", "Volume discounts"],
        "price_monthly_cents": 29900,
        "price_yearly_cents": 299000,
        "monthly_credit_units": to_units(40000),
        "voice_cloning": True,
        "api_access": True,
        "upload_max_mb": 25,
        "sort_order": 30,
    },
]

PACKS: list[dict[str, Any]] = [
    {"code": "small", "name": "500 credits", "credit_units": to_units(500), "price_cents": 1000, "sort_order": 0},
    {
        "code": "medium",
        "name": "2,000 credits",
        "credit_units": to_units(2000),
        "bonus_units": to_units(100),
        "price_cents": 3500,
        "sort_order": 10,
    },
    {
        "code": "large",
        "name": "10,000 credits",
        "credit_units": to_units(10000),
        "bonus_units": to_units(1000),
        "price_cents": 15000,
        "sort_order": 20,
    },
]


def billing_seed_catalogue() -> dict[str, int]:
    """Create the missing default plans and packs. Returns how many of each were created."""
    created = {"plans": 0, "packs": 0}
    has_default = Plan.objects.filter(is_default=True).exists()
    for spec in PLANS:
        spec = dict(spec)
        if has_default:
            spec["is_default"] = False
        _, made = Plan.objects.get_or_create(code=spec.pop("code"), defaults=spec)
        created["plans"] += made
        has_default = has_default or (made and spec.get("is_default", False))
    for spec in PACKS:
        spec = dict(spec)
        _, made = CreditPack.objects.get_or_create(code=spec.pop("code"), defaults=spec)
        created["packs"] += made
    # The default plan (new, or found) applies to every workspace without a plan of its own.
    entitlements_push_default()
    return created
