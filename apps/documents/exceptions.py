"""The documents' refusals, as `DomainError`s (see `apps.core.errors`)."""

from __future__ import annotations

from typing import Any

from apps.core.errors import DomainError


class DocumentError(DomainError):
    """A document rule refused the change (empty title, too long, unknown folder); `param` names
    the field and the message is safe to show."""

    status_code = 400
    code = "invalid_document"
    default_message = "The document cannot be changed that way."


class DocumentLimitReached(DocumentError):
    """The workspace's plan allows no more documents."""

    status_code = 403
    code = "document_limit_reached"
    default_message = "Your plan allows no more documents in this workspace."


class VersionConflict(DocumentError):
    """The save was based on a version that is no longer the latest: someone saved in between.
    Nothing was written; `current_version` says what to base the next save on."""

    status_code = 409
    code = "version_conflict"
    default_message = "Someone saved this document after you opened it. Your text was not saved."

    def __init__(self, *, current_version: int, base_version: int) -> None:
        super().__init__(param="base_version")
        self.current_version = current_version
        self.base_version = base_version

    def details(self) -> dict[str, Any]:
        return {"current_version": self.current_version, "base_version": self.base_version}
