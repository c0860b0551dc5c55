from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from apps.credits.selectors import credits_balance


def credits(request: HttpRequest) -> dict[str, Any]:
    workspace = getattr(request, "workspace", None)
    if workspace is None:
        return {}
    # Lazy: evaluated (one query) only by templates that show the balance.
    return {"credit_balance": SimpleLazyObject(lambda: credits_balance(workspace=workspace))}
