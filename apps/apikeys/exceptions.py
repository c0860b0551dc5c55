"""API key errors. Each carries the HTTP status and a stable `code` for the API's error shape;
the message is safe to show to whoever sent the key."""

from __future__ import annotations

from apps.core.errors import DomainError
from apps.credits.exceptions import CapExceeded


class ApiKeyError(DomainError):
    """An API key rule refused the request or the change (400 unless a subclass says otherwise)."""

    status_code = 400
    code = "invalid_request"


class ApiKeyInvalid(ApiKeyError):
    """Unknown, revoked or expired key, suspended creator or deleted workspace. The message is
    the same for all of them so a caller learns nothing about which; `reason` is for logs."""

    status_code = 401
    code = "invalid_api_key"
    MESSAGE = "Invalid API key."

    def __init__(self, reason: str = "") -> None:
        super().__init__(self.MESSAGE)
        self.reason = reason


class ApiKeyScopeDenied(ApiKeyError):
    status_code = 403
    code = "insufficient_scope"

    def __init__(self, scope: str) -> None:
        super().__init__(f"This API key does not have the “{scope}” scope.")
        self.scope = scope


class ApiKeyPlanDenied(ApiKeyError):
    """The workspace's plan does not include API access (the key itself is valid)."""

    status_code = 403
    code = "plan_no_api_access"

    def __init__(self, plan_name: str) -> None:
        super().__init__(
            f"The {plan_name or 'current'} plan does not include API access. "
            "Upgrade the workspace's plan to use the API."
        )


class ApiKeyModelDenied(ApiKeyError):
    status_code = 403
    code = "model_not_allowed"

    def __init__(self, model_id: str) -> None:
        super().__init__(f"This API key is not allowed to use the model “{model_id}”.")
        self.model_id = model_id


class ApiKeyCapReached(CapExceeded, ApiKeyError):
    status_code = 429
    code = "spending_cap_reached"

    def __init__(self, *, cap: str, limit_units: int, spent_units: int, requested_units: int) -> None:
        amounts = {"limit_units": limit_units, "spent_units": spent_units, "requested_units": requested_units}
        super().__init__(self.cap_message("This API key's", cap=cap, **amounts))
