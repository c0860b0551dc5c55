from __future__ import annotations

from typing import Any

from apps.core.errors import DomainError

# The code of a refusal raised with a status but no code of its own (the codes the platform API
# has always sent for these statuses).
CODE_FOR_STATUS = {
    400: "invalid_value",
    403: "permission_denied",
    409: "conflict",
    413: "too_large",
    502: "upstream_error",
}


class MediaError(DomainError):
    """A media request or job refused with a reason the caller can show (4xx). A provider that
    failed a step of the job (bad image data, a voice it could not delete) is raised with 502.

    `upgrade_url`: where a refusal that a better plan lifts (voice cloning, storage) can be
    acted on. The message stays plain text; pages link it, the platform API adds it to the
    body (`details`)."""

    status_code = 400
    code = "invalid_value"

    def __init__(
        self,
        message: str,
        *,
        status_code: int = 400,
        param: str | None = None,
        code: str | None = None,
        upgrade_url: str = "",
    ) -> None:
        super().__init__(
            message,
            status_code=status_code,
            param=param,
            code=code or CODE_FOR_STATUS.get(status_code, self.code),
        )
        self.upgrade_url = upgrade_url

    def details(self) -> dict[str, Any]:
        return {"upgrade_url": self.upgrade_url} if self.upgrade_url else {}
