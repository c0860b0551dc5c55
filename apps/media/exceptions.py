from __future__ import annotations


class MediaError(Exception):
    """A media request or job refused with a reason the caller can show (4xx)."""

    def __init__(self, message: str, *, status_code: int = 400, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.param = param
        self.code = code or ("invalid_value" if status_code == 400 else None)
