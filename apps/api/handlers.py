"""The site's error handlers (`handler400/403/404/500` in aikeedo/urls.py): under `/v1/` and
`/api/` the error in that API's JSON shape, elsewhere the site's pages. Django calls them for
an unknown URL (404) and for exceptions no view handled (a 500 has already been logged)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404
from django.views import defaults

from apps.api.errors import ApiError, surface_of
from apps.api.middleware import generic_error, unknown_endpoint
from apps.core import views as core_views


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    surface = surface_of(request.path_info)
    if surface is not None:
        return generic_error(request, 400).response(surface)
    return defaults.bad_request(request, exception)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    surface = surface_of(request.path_info)
    if surface is not None:
        message = str(exception or "") or "You do not have permission to do this."
        return ApiError(403, message, code="permission_denied").response(surface)
    return core_views.permission_denied(request, exception)


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    surface = surface_of(request.path_info)
    if surface is not None:
        if exception is None or isinstance(exception, Resolver404) or not str(exception):
            return unknown_endpoint(request).response(surface)
        return ApiError(404, str(exception), code="not_found").response(surface)
    return core_views.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    surface = surface_of(request.path_info)
    if surface is not None:
        return generic_error(request, 500).response(surface)
    return core_views.server_error(request)
