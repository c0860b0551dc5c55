from __future__ import annotations

from typing import Any

from constance.utils import get_values_for_keys
from django.http import HttpRequest

BRANDING_KEYS = ["SITE_NAME", "SITE_LOGO_URL", "SITE_TAGLINE", "SUPPORT_EMAIL", "DEFAULT_THEME"]


def branding(request: HttpRequest) -> dict[str, Any]:
    # One backend read for every branding value (not one query per key).
    values = get_values_for_keys(BRANDING_KEYS)
    theme = values["DEFAULT_THEME"]
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        theme = (user.preferences or {}).get("theme") or theme
    return {
        "branding": {
            "site_name": values["SITE_NAME"],
            "logo_url": values["SITE_LOGO_URL"],
            "tagline": values["SITE_TAGLINE"],
            "support_email": values["SUPPORT_EMAIL"],
        },
        "theme": theme,
    }
