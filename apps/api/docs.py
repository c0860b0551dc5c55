"""What the OpenAPI schema says about responses both APIs share: the error shapes (one per
surface, see `apps.api.errors`), the statuses each operation can answer, and the pagination
envelope of the platform's lists. Used by `extend_schema` in the views and `schema_urls`."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers

from apps.api.serializers import ErrorSerializer

# ---------------------------------------------------------------------------- platform (/api)


class PlatformErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="What went wrong, for a person.")
    code = serializers.CharField(
        help_text="A stable code for programs: `invalid`, `not_authenticated`, `permission_denied`, `not_found`, "
        "`too_large`, `insufficient_credits`, …"
    )
    param = serializers.CharField(
        allow_null=True, help_text="The field the error is about (a dotted path), when there is one."
    )
    errors = serializers.DictField(  # type: ignore[assignment]  # the field, not .errors
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="Validation errors only: every field's messages, by dotted path.",
    )


PLATFORM_STATUS = {
    400: "Invalid parameters or body (`param` names the field), or a malformed request",
    401: "No credentials, or an unknown, revoked or expired API key",
    402: "Not enough credits, or a spending cap reached",
    403: "The key lacks the scope, the plan has no API access, or the member may not do this",
    404: "Not found in this workspace (another workspace's id answers 404), or an invalid page",
    405: "Method not allowed",
    406: "The `Accept` header asks for a format the API does not give",
    409: "The object is not in a state that allows this",
    413: "The body is larger than the limit (10 MB; an upload larger than the plan allows)",
    415: "Unsupported `Content-Type`",
    429: "The API key's spending cap or a rate limit (see `Retry-After`)",
    500: "An unexpected error (logged)",
    502: "The provider answered with something unusable",
    503: "The provider is not available",
}
# Every operation can answer these (a bad request, credentials, a body over the limit, a bug).
PLATFORM_ALWAYS = (400, 401, 403, 404, 405, 406, 413, 500)


def platform_errors(*extra: int) -> dict[int, OpenApiResponse]:
    """The error responses of a platform operation: `PLATFORM_ALWAYS` and `extra`."""
    return {
        status: OpenApiResponse(PlatformErrorSerializer, description=PLATFORM_STATUS[status])
        for status in sorted({*PLATFORM_ALWAYS, *extra})
    }


_PAGES: dict[type[serializers.Serializer], type[serializers.Serializer]] = {}


def paginated(item: type[serializers.Serializer]) -> type[serializers.Serializer]:
    """The envelope `Pages` answers lists in: `{count, next, previous, results: [item]}`."""
    if item not in _PAGES:
        name = item.__name__.removesuffix("Out")
        _PAGES[item] = type(
            f"Paginated{name}List",
            (serializers.Serializer,),
            {
                "count": serializers.IntegerField(help_text="How many there are in all."),
                "next": serializers.URLField(allow_null=True, help_text="The next page, or null."),
                "previous": serializers.URLField(allow_null=True, help_text="The previous page, or null."),
                "results": item(many=True),
                "__module__": __name__,
            },
        )
    return _PAGES[item]


PAGE_PARAMETERS = [
    OpenApiParameter("page", int, description="A page number from 1 (an invalid page answers 404)."),
    OpenApiParameter("page_size", int, description="Up to 200; 50 by default."),
]

LINK_TTL_DESCRIPTION = (
    "Download links (`url`, `download_url`, `preview_url`, `thumbnail_url`) given to an API key are bearer "
    "capabilities: anyone holding one can fetch the file until the link expires (300 seconds by default), "
    "without a key. Treat them as secrets. `link_ttl` asks for a shorter life, in seconds (10 to 300). Links "
    "given to a signed-in session only work for members of the workspace."
)
LINK_TTL_PARAMETER = OpenApiParameter(
    "link_ttl", int, description="Seconds the download links stay valid: 10 to 300 (default 300)."
)

# ---------------------------------------------------------------------------- OpenAI-compatible (/v1)

OPENAI_STATUS = {
    400: "Invalid body (`param` names the field), e.g. a missing `model`, control characters, JSON nested too deep",
    401: "Missing, unknown, revoked or expired key",
    402: "Not enough credits, or a workspace spending cap",
    403: "The key lacks the scope, or may not use the model",
    404: "Unknown model",
    405: "Method not allowed",
    409: "The job was cancelled",
    413: "The body is larger than 8 MB (an upload larger than the plan allows)",
    429: "Rate limited (see `Retry-After`) or key spending cap",
    500: "An unexpected error (logged)",
    503: "Every provider of the model failed",
    504: "The job is still running (its id is in the message)",
}
# Every operation can answer these; the ones that call a model add 402, 429 and 503.
OPENAI_ALWAYS = (400, 401, 403, 404, 405, 413, 500)
OPENAI_BILLED = (402, 429, 503)


def openai_errors(*extra: int) -> dict[int, OpenApiResponse]:
    """The error responses of a `/v1` operation: `OPENAI_ALWAYS` and `extra`."""
    return {
        status: OpenApiResponse(ErrorSerializer, description=OPENAI_STATUS[status])
        for status in sorted({*OPENAI_ALWAYS, *extra})
    }
