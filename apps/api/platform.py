"""The platform API under `/api/v1/` (DRF): the current workspace, credits and usage,
conversations, API keys. Signed-in sessions act in their current workspace; an API key acts in
its own workspace, with the `platform_read` scope for reads and `platform_write` for changes.

Every object is looked up within the caller's workspace: another workspace's id answers 404.
Every error — DRF's, our domain errors (4xx), a bug (a logged 500) — is answered in the
platform's one shape by `platform_exception_handler` (`apps.api.errors`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.http import HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import exceptions, serializers, status
from rest_framework.authentication import BaseAuthentication, SessionAuthentication
from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import BasePermission
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView, set_rollback

from apps.accounts.models import User
from apps.api.docs import PAGE_PARAMETERS, paginated, platform_errors
from apps.api.errors import api_error_for, drf_error, platform_response, unexpected_error
from apps.api.fields import IdentifierField, TextField
from apps.apikeys.exceptions import ApiKeyError, ApiKeyPlanDenied
from apps.apikeys.models import ApiKey, Scope
from apps.apikeys.services import apikey_authenticate, apikey_create, apikey_revoke
from apps.chat.models import Conversation, Message
from apps.chat.selectors import ConversationFilters, conversation_list
from apps.chat.services import conversation_delete, conversation_export
from apps.core.middleware import client_ip
from apps.credits.amounts import to_credits, to_units
from apps.credits.selectors import UsageFilters, credits_balance, usage_queryset
from apps.workspaces.models import Workspace
from apps.workspaces.roles import Perm
from apps.workspaces.services import require_perm

# ---------------------------------------------------------------------------- auth


class KeyPrincipal:
    """The requester of a key without a creator (made by `manage.py apikey`)."""

    is_authenticated = True
    is_active = True
    is_anonymous = False
    pk = None

    def __init__(self, key: ApiKey) -> None:
        self.key = key

    def __str__(self) -> str:
        return f"API key {self.key.prefix}"


class ApiKeyAuthentication(BaseAuthentication):
    """`Authorization: Bearer <workspace API key>`. The request acts as the key's creator (for
    audit rows and role checks), inside the key's workspace."""

    keyword = "bearer"

    def authenticate(self, request: Request) -> tuple[Any, ApiKey] | None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != self.keyword or not token.strip():
            return None
        try:
            key = apikey_authenticate(raw_key=token.strip(), ip=client_ip(request._request))
        except ApiKeyPlanDenied as exc:
            raise exceptions.PermissionDenied(exc.message) from exc
        except ApiKeyError as exc:
            raise exceptions.AuthenticationFailed(exc.message) from exc
        # A key made by a command has no creator: it reads, but has nobody to act as for changes.
        return key.created_by or KeyPrincipal(key), key

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "apps.api.platform.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "A workspace API key (`ak_…`)."}


@dataclass(frozen=True)
class Caller:
    workspace: Workspace
    key: ApiKey | None
    person: User | None  # who acts: the signed-in user, or the key's creator

    @property
    def user(self) -> User:
        """The person changes are made as (audit rows, role checks)."""
        if self.person is None:
            raise exceptions.PermissionDenied(
                "This API key was created by a command and has no member to act as; use a key created in the app."
            )
        return self.person


def caller(request: Request) -> Caller:
    key = request.auth if isinstance(request.auth, ApiKey) else None
    if key is not None:
        return Caller(workspace=key.workspace, key=key, person=key.created_by)
    workspace = getattr(request._request, "workspace", None)
    if workspace is None:
        raise exceptions.NotFound("You have no current workspace.")
    return Caller(workspace=workspace, key=None, person=request.user)  # type: ignore[arg-type]


class PlatformAccess(BasePermission):
    """Signed in (session or key); a key needs `read_scope` to read and `write_scope` to change
    anything (the write scope implies the read one). Subclasses name other scopes."""

    message = "This API key does not have the scope this request needs."
    read_scope: str = Scope.PLATFORM_READ
    write_scope: str = Scope.PLATFORM_WRITE

    def scope_for(self, request: Request) -> str:
        return self.read_scope if request.method in ("GET", "HEAD", "OPTIONS") else self.write_scope

    def has_permission(self, request: Request, view: Any) -> bool:
        if not request.user or not request.user.is_authenticated:
            return False
        key = request.auth if isinstance(request.auth, ApiKey) else None
        return key is None or key.has_scope(self.scope_for(request))


def platform_exception_handler(exc: Exception, context: dict[str, Any]) -> JsonResponse:
    """Every error of the platform API in its one shape: DRF's exceptions, our domain errors
    as 4xx with their message, Django's request errors (413, 400), anything else a logged 500.
    A JSON response whatever the `Accept` header asks for (errors are never HTML here)."""
    # Not DRF's: a domain error, a provider that failed, a request error, Http404, PermissionDenied.
    error = drf_error(exc) if isinstance(exc, exceptions.APIException) else api_error_for(exc)
    if error is None:
        error = unexpected_error(context["request"]._request, exc)
    set_rollback()
    return platform_response(error)


class PlatformView(APIView):
    authentication_classes = [ApiKeyAuthentication, SessionAuthentication]
    permission_classes = [PlatformAccess]

    def get_exception_handler(self) -> Any:
        return platform_exception_handler


class Pages(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


def query(request: Request, serializer: type[serializers.Serializer]) -> dict[str, Any]:
    """The request's query parameters, validated by `serializer` (a 400 naming the bad ones
    otherwise): only those given, so a filter dataclass's defaults stand for the rest."""
    params = serializer(data=request.query_params)
    params.is_valid(raise_exception=True)
    return dict(params.validated_data)


def _paginated(view: APIView, request: Request, queryset: Any, serializer: type[serializers.Serializer]) -> Response:
    paginator = Pages()
    page = paginator.paginate_queryset(queryset, request, view=view)
    return paginator.get_paginated_response(serializer(page, many=True).data)


# ---------------------------------------------------------------------------- workspace & credits


class WorkspaceOut(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    slug = serializers.CharField()
    is_personal = serializers.BooleanField()
    response_cache = serializers.BooleanField()
    created_at = serializers.DateTimeField()


class WorkspaceView(PlatformView):
    @extend_schema(
        responses={200: WorkspaceOut, **platform_errors()}, summary="The workspace this session or key acts in"
    )
    def get(self, request: Request) -> Response:
        return Response(WorkspaceOut(caller(request).workspace).data)


class BalanceOut(serializers.Serializer):
    available = serializers.DecimalField(max_digits=20, decimal_places=4)
    held = serializers.DecimalField(max_digits=20, decimal_places=4)
    balance = serializers.DecimalField(max_digits=20, decimal_places=4)
    low = serializers.BooleanField()


class CreditsView(PlatformView):
    @extend_schema(responses={200: BalanceOut, **platform_errors()}, summary="Credits balance")
    def get(self, request: Request) -> Response:
        balance = credits_balance(workspace=caller(request).workspace)
        return Response(
            BalanceOut(
                {
                    "available": to_credits(balance.available_units),
                    "held": to_credits(balance.held_units),
                    "balance": to_credits(balance.balance_units),
                    "low": balance.low,
                }
            ).data
        )


class UsageOut(serializers.Serializer):
    id = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    service = serializers.CharField()
    model = serializers.CharField()
    credits = serializers.SerializerMethodField()
    usage = serializers.JSONField()
    user = serializers.SerializerMethodField()

    def get_credits(self, obj: Any) -> str:
        return str(to_credits(obj.charged_units))

    def get_user(self, obj: Any) -> str | None:
        return obj.user.email if obj.user_id else None


class UsageFilterIn(serializers.Serializer):
    start = serializers.DateField(required=False)
    end = serializers.DateField(required=False)
    service = IdentifierField(required=False, max_length=32)
    model = IdentifierField(required=False, max_length=100)


class UsageView(PlatformView):
    @extend_schema(
        parameters=[UsageFilterIn, *PAGE_PARAMETERS],
        operation_id="api_v1_credits_usage_list",
        responses={200: paginated(UsageOut), **platform_errors()},
        summary="Settled charges, newest first",
    )
    def get(self, request: Request) -> Response:
        filters = UsageFilters(**query(request, UsageFilterIn))
        qs = usage_queryset(workspace=caller(request).workspace, filters=filters)
        return _paginated(self, request, qs, UsageOut)


# ---------------------------------------------------------------------------- conversations


class ConversationOut(serializers.Serializer):
    id = serializers.IntegerField()
    title = serializers.CharField()
    model = serializers.SerializerMethodField()
    system_prompt = serializers.CharField()
    temperature = serializers.DecimalField(max_digits=3, decimal_places=2, allow_null=True)
    max_tokens = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def get_model(self, obj: Conversation) -> str | None:
        return obj.model.model_id if obj.model_id and obj.model else None


class MessageOut(serializers.Serializer):
    id = serializers.IntegerField()
    role = serializers.CharField()
    content = serializers.CharField()
    status = serializers.CharField()
    model = serializers.CharField(source="model_label")
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    credits = serializers.SerializerMethodField()
    error = serializers.CharField()
    created_at = serializers.DateTimeField()

    def get_credits(self, obj: Message) -> str:
        return str(to_credits(obj.credits_units))


class ConversationDetailOut(ConversationOut):
    messages = serializers.SerializerMethodField()

    @extend_schema_field(MessageOut(many=True))
    def get_messages(self, obj: Conversation) -> list[dict[str, Any]]:
        messages = Message.objects.filter(conversation=obj, workspace_id=obj.workspace_id).order_by("created_at", "id")
        return MessageOut(messages, many=True).data  # type: ignore[return-value]


class ConversationFilterIn(serializers.Serializer):
    q = TextField(required=False, max_length=200, help_text="Search titles and messages")
    start = serializers.DateField(required=False)
    end = serializers.DateField(required=False)
    model = IdentifierField(required=False, max_length=100)


class ConversationListView(PlatformView):
    @extend_schema(
        parameters=[ConversationFilterIn, *PAGE_PARAMETERS],
        operation_id="api_v1_conversations_list",
        responses={200: paginated(ConversationOut), **platform_errors()},
        summary="Conversations, most recent first",
    )
    def get(self, request: Request) -> Response:
        filters = ConversationFilters(**query(request, ConversationFilterIn))
        qs = conversation_list(workspace=caller(request).workspace, filters=filters)
        return _paginated(self, request, qs, ConversationOut)


def _conversation(request: Request, conversation_id: int) -> Conversation:
    workspace = caller(request).workspace
    return get_object_or_404(
        Conversation.objects.for_workspace(workspace).select_related("model", "workspace"), pk=conversation_id
    )


class ConversationDetailView(PlatformView):
    @extend_schema(
        responses={200: ConversationDetailOut, **platform_errors()}, summary="One conversation with its messages"
    )
    def get(self, request: Request, conversation_id: int) -> Response:
        return Response(ConversationDetailOut(_conversation(request, conversation_id)).data)

    @extend_schema(responses={204: None, **platform_errors()}, summary="Delete a conversation")
    def delete(self, request: Request, conversation_id: int) -> Response:
        conversation = _conversation(request, conversation_id)
        conversation_delete(conversation=conversation, acting_user=caller(request).user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ConversationExportView(PlatformView):
    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        # `?format=` names the export format here, not a DRF renderer; the response is a file.
        return (JSONRenderer(), "application/json")

    @extend_schema(
        parameters=[OpenApiParameter("format", str, enum=["md", "json"], description="md (default) or json")],
        responses={
            (200, "text/markdown"): OpenApiTypes.STR,
            (200, "application/json"): OpenApiTypes.OBJECT,
            **platform_errors(),
        },
        summary="Export a conversation as Markdown or JSON",
    )
    def get(self, request: Request, conversation_id: int) -> HttpResponse:
        conversation = _conversation(request, conversation_id)
        export = conversation_export(
            conversation=conversation, fmt=request.query_params.get("format", "md"), acting_user=caller(request).user
        )
        response = HttpResponse(export.content, content_type=export.content_type)
        response["Content-Disposition"] = f'attachment; filename="{export.filename}"'
        return response


# ---------------------------------------------------------------------------- API keys


class ApiKeyOut(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    prefix = serializers.CharField()
    scopes = serializers.ListField(child=serializers.CharField())
    allowed_models = serializers.ListField(child=serializers.CharField())
    expires_at = serializers.DateTimeField(allow_null=True)
    daily_cap = serializers.SerializerMethodField()
    monthly_cap = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    last_used_at = serializers.DateTimeField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)
    state = serializers.CharField()

    def get_daily_cap(self, obj: ApiKey) -> str | None:
        return None if obj.daily_cap_units is None else str(to_credits(obj.daily_cap_units))

    def get_monthly_cap(self, obj: ApiKey) -> str | None:
        return None if obj.monthly_cap_units is None else str(to_credits(obj.monthly_cap_units))


class ApiKeyCreateIn(serializers.Serializer):
    name = TextField(max_length=100)
    scopes = serializers.ListField(child=serializers.ChoiceField(choices=Scope.choices), allow_empty=False)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)
    daily_cap = serializers.DecimalField(max_digits=20, decimal_places=4, required=False, allow_null=True)
    monthly_cap = serializers.DecimalField(max_digits=20, decimal_places=4, required=False, allow_null=True)
    allowed_models = serializers.ListField(child=IdentifierField(max_length=100), required=False)


class ApiKeyCreatedOut(ApiKeyOut):
    key = serializers.CharField(help_text="The full key. Shown only in this response.")


class ApiKeyListView(PlatformView):
    @extend_schema(
        parameters=PAGE_PARAMETERS,
        operation_id="api_v1_api_keys_list",
        responses={200: paginated(ApiKeyOut), **platform_errors()},
        summary="The workspace's API keys (never the keys themselves)",
    )
    def get(self, request: Request) -> Response:
        qs = ApiKey.objects.for_workspace(caller(request).workspace).order_by("-created_at", "-id")
        return _paginated(self, request, qs, ApiKeyOut)

    @extend_schema(
        request=ApiKeyCreateIn,
        responses={201: ApiKeyCreatedOut, **platform_errors(415)},
        summary="Create an API key",
    )
    def post(self, request: Request) -> Response:
        who = caller(request)
        data_in = ApiKeyCreateIn(data=request.data)
        data_in.is_valid(raise_exception=True)
        data = data_in.validated_data
        if who.key is not None and not set(data["scopes"]) <= set(who.key.scopes):
            raise exceptions.PermissionDenied("A key can only create keys with scopes it has itself.")
        key, raw = apikey_create(
            workspace=who.workspace,
            acting_user=who.user,
            name=data["name"],
            scopes=data["scopes"],
            expires_at=data.get("expires_at"),
            daily_cap_units=to_units(data["daily_cap"]) if data.get("daily_cap") is not None else None,
            monthly_cap_units=to_units(data["monthly_cap"]) if data.get("monthly_cap") is not None else None,
            allowed_models=data.get("allowed_models"),
        )
        body = dict(ApiKeyOut(key).data)
        body["key"] = raw
        return Response(body, status=status.HTTP_201_CREATED)


class ApiKeyRevokeView(PlatformView):
    @extend_schema(
        request=None,
        responses={200: ApiKeyOut, **platform_errors()},
        summary="Revoke an API key (takes effect at once)",
    )
    def post(self, request: Request, key_id: int) -> Response:
        who = caller(request)
        key = get_object_or_404(ApiKey.objects.for_workspace(who.workspace), pk=key_id)
        require_perm(workspace=who.workspace, user=who.user, perm=Perm.MANAGE_SETTINGS)
        return Response(ApiKeyOut(apikey_revoke(key=key, acting_user=who.user)).data)
