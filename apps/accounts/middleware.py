from __future__ import annotations

import zoneinfo
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone, translation


class UserPreferencesMiddleware:
    """Activates the signed-in user's language and time zone for the request."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.languages = {code for code, _ in settings.LANGUAGES}

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        tz: zoneinfo.ZoneInfo | None = None
        if user is not None and user.is_authenticated:
            if user.locale in self.languages:
                # LocaleMiddleware (outside this one) reads the active language for the
                # Content-Language header and activates afresh on the next request.
                translation.activate(user.locale)
                request.LANGUAGE_CODE = user.locale
            try:
                tz = zoneinfo.ZoneInfo(user.timezone)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                tz = None
        # The time zone is thread state: reset it afterwards so it does not leak into whatever
        # the thread runs next (another request's startup code, a task, a test).
        with timezone.override(tz):
            return self.get_response(request)
