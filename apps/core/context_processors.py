from __future__ import annotations

from typing import Any

from constance import config
from django.http import HttpRequest


def branding(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    theme = config.DEFAULT_THEME
    if user is not None and user.is_authenticated:
        theme = (user.preferences or {}).get("theme") or theme
    return {
        "branding": {
            "site_name": config.SITE_NAME,
            "logo_url": config.SITE_LOGO_URL,
            "tagline": config.SITE_TAGLINE,
            "support_email": config.SUPPORT_EMAIL,
        },
        "theme": theme,
    }
