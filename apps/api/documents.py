"""`/api/v1/documents/` and `/api/v1/presets/`: the workspace's documents (list, search, create,
read, update with `base_version`, trash, history, restore, export) and the presets its caller can
see (list, create, update, delete, render). An API key needs `documents_read` to read and
`documents_write` to change anything (`documents_write` includes reading); a signed-in session
acts as its member. Another workspace's ids answer 404; a stale update answers 409
`version_conflict` with the current version."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404
from django.utils.html import escape
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounts.models import User
from apps.api.docs import PAGE_PARAMETERS, paginated, platform_errors
from apps.api.platform import PlatformAccess, PlatformView, _paginated, caller, query
from apps.apikeys.models import Scope
from apps.core.markdown import render_markdown
from apps.documents.exceptions import DocumentError
from apps.documents.models import Document, Folder, Tag
from apps.documents.selectors import DocumentFilters, document_list, document_versions
from apps.documents.services import (
    document_create,
    document_organise,
    document_save,
    document_trash,
    document_version_restore,
    folder_create,
)
from apps.generation.models import AIModel
from apps.presets.exceptions import PresetError
from apps.presets.models import Preset
from apps.presets.selectors import PresetFilters, visible_preset, visible_presets
from apps.presets.services import preset_create, preset_delete, preset_update, preset_use


class DocumentsAccess(PlatformAccess):
    """A key needs `documents_read` to read, `documents_write` to change."""

    message = "This API key does not have the scope this request needs (documents_read or documents_write)."
    read_scope = Scope.DOCUMENTS_READ
    write_scope = Scope.DOCUMENTS_WRITE


class ReadScope(DocumentsAccess):
    """`documents_read` whatever the method (rendering a preset changes nothing the caller owns)."""

    def scope_for(self, request: Request) -> str:
        return self.read_scope


class ContentView(PlatformView):
    permission_classes = [DocumentsAccess]


# ---------------------------------------------------------------------------- documents


class DocumentSummaryOut(serializers.Serializer):
    id = serializers.IntegerField()
    title = serializers.CharField()
    excerpt = serializers.CharField()
    folder = serializers.CharField(source="folder.name", allow_null=True, default=None)
    tags = serializers.SerializerMethodField()
    version = serializers.IntegerField()
    owner = serializers.EmailField(source="owner.email", allow_null=True, default=None)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    in_trash = serializers.BooleanField()

    def get_tags(self, document: Document) -> list[str]:
        return [tag.name for tag in document.tags.all()]


class DocumentOut(DocumentSummaryOut):
    body = serializers.CharField()


class DocumentFilterIn(serializers.Serializer):
    q = serializers.CharField(required=False, max_length=200, help_text="Search titles and text")
    folder = serializers.CharField(required=False, max_length=100, help_text="A folder's name")
    tag = serializers.CharField(required=False, max_length=50)
    owner = serializers.EmailField(required=False)
    updated_from = serializers.DateField(required=False)
    updated_to = serializers.DateField(required=False)
    trashed = serializers.BooleanField(required=False, default=False, help_text="List the trash instead")


class DocumentIn(serializers.Serializer):
    title = serializers.CharField(max_length=200, required=False, default="Untitled document")
    body = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False, default="")
    folder = serializers.CharField(required=False, allow_null=True, max_length=100, help_text="Created if missing")
    tags = serializers.ListField(child=serializers.CharField(max_length=50), required=False, max_length=20)


class DocumentUpdateIn(serializers.Serializer):
    base_version = serializers.IntegerField(min_value=1, help_text="The version this change was made on")
    title = serializers.CharField(max_length=200, required=False)
    body = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    folder = serializers.CharField(required=False, allow_null=True, max_length=100)
    tags = serializers.ListField(child=serializers.CharField(max_length=50), required=False, max_length=20)


class VersionOut(serializers.Serializer):
    number = serializers.IntegerField()
    title = serializers.CharField()
    author = serializers.EmailField(source="author.email", allow_null=True, default=None)
    source = serializers.CharField()  # type: ignore[assignment]  # the field is named source
    model = serializers.CharField(source="model_label")
    restored_from = serializers.IntegerField(allow_null=True)
    saved_at = serializers.DateTimeField()


class RestoreIn(serializers.Serializer):
    version = serializers.IntegerField(min_value=1)
    base_version = serializers.IntegerField(min_value=1, required=False)


def _folder(request: Request, name: str | None) -> Folder | None:
    if not name:
        return None
    who = caller(request)
    found = Folder.objects.filter(workspace=who.workspace, name__iexact=name.strip()).first()
    return found or folder_create(workspace=who.workspace, user=who.user, name=name)


def _document(request: Request, document_id: int, *, trashed: bool | None = False) -> Document:
    qs = Document.objects.for_workspace(caller(request).workspace).select_related("folder", "owner", "workspace")
    if trashed is not None:
        qs = qs.filter(deleted_at__isnull=not trashed)
    return get_object_or_404(qs.prefetch_related("tags"), pk=document_id)


def _fresh(document: Document) -> Document:
    return Document.objects.select_related("folder", "owner", "workspace").prefetch_related("tags").get(pk=document.pk)


class DocumentListView(ContentView):
    @extend_schema(
        parameters=[DocumentFilterIn, *PAGE_PARAMETERS],
        operation_id="api_v1_documents_list",
        responses={200: paginated(DocumentSummaryOut), **platform_errors()},
        summary="Documents: best matches first when searching, else the most recently changed",
    )
    def get(self, request: Request) -> Response:
        who = caller(request)
        params = query(request, DocumentFilterIn)
        workspace = who.workspace
        name = params.get("folder"), params.get("tag"), params.get("owner")
        folder = Folder.objects.filter(workspace=workspace, name__iexact=name[0]).first() if name[0] else None
        tag = Tag.objects.filter(workspace=workspace, name__iexact=name[1]).first() if name[1] else None
        members = User.objects.filter(memberships__workspace=workspace)
        owner = members.filter(email__iexact=name[2]).first() if name[2] else None
        filters = DocumentFilters(
            query=params.get("q", ""),
            folder=folder,
            tag=tag,
            author=owner,
            updated_from=params.get("updated_from"),
            updated_to=params.get("updated_to"),
            trashed=params.get("trashed", False),
        )
        wanted = {"folder": filters.folder, "tag": filters.tag, "owner": filters.author}
        qs: QuerySet[Document]
        if any(params.get(name) and found is None for name, found in wanted.items()):
            qs = Document.objects.none()  # a folder, tag or owner that does not exist here: nothing
        else:
            qs = document_list(workspace=workspace, filters=filters)
        return _paginated(self, request, qs, DocumentSummaryOut)

    @extend_schema(request=DocumentIn, responses={201: DocumentOut, **platform_errors()}, summary="Create a document")
    def post(self, request: Request) -> Response:
        who = caller(request)
        data = DocumentIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        document = document_create(
            workspace=who.workspace,
            user=who.user,
            title=values["title"],
            body=values["body"],
            folder=_folder(request, values.get("folder")),
            tags=values.get("tags", []),
        )
        return Response(DocumentOut(_fresh(document)).data, status=status.HTTP_201_CREATED)


class DocumentDetailView(ContentView):
    @extend_schema(responses={200: DocumentOut, **platform_errors()}, summary="One document")
    def get(self, request: Request, document_id: int) -> Response:
        return Response(DocumentOut(_document(request, document_id, trashed=None)).data)

    @extend_schema(
        request=DocumentUpdateIn,
        responses={200: DocumentOut, **platform_errors()},
        summary="Change a document: a new version; 409 version_conflict when base_version is not the latest",
    )
    def patch(self, request: Request, document_id: int) -> Response:
        who = caller(request)
        document = _document(request, document_id)
        data = DocumentUpdateIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        saved = document_save(
            document=document,
            user=who.user,
            base_version=values["base_version"],
            title=values.get("title"),
            body=values.get("body"),
        )
        if "folder" in values or "tags" in values:
            document_organise(
                document=saved,
                user=who.user,
                folder=_folder(request, values.get("folder")) if "folder" in values else ...,
                tags=values.get("tags"),
            )
        return Response(DocumentOut(_fresh(saved)).data)

    @extend_schema(responses={204: None, **platform_errors()}, summary="Move a document to the trash (30 days)")
    def delete(self, request: Request, document_id: int) -> Response:
        document_trash(document=_document(request, document_id), user=caller(request).user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class DocumentVersionsView(ContentView):
    @extend_schema(
        parameters=PAGE_PARAMETERS,
        operation_id="api_v1_documents_versions_list",
        responses={200: paginated(VersionOut), **platform_errors()},
        summary="A document's versions, newest first",
    )
    def get(self, request: Request, document_id: int) -> Response:
        document = _document(request, document_id, trashed=None)
        return _paginated(self, request, document_versions(document=document), VersionOut)


class DocumentRestoreView(ContentView):
    @extend_schema(
        request=RestoreIn,
        responses={200: DocumentOut, **platform_errors()},
        summary="Bring back an earlier version as a new version",
    )
    def post(self, request: Request, document_id: int) -> Response:
        data = RestoreIn(data=request.data)
        data.is_valid(raise_exception=True)
        document = document_version_restore(
            document=_document(request, document_id),
            number=data.validated_data["version"],
            user=caller(request).user,
            base_version=data.validated_data.get("base_version"),
        )
        return Response(DocumentOut(_fresh(document)).data)


EXPORT_TYPES = {"md": "text/markdown; charset=utf-8", "html": "text/html; charset=utf-8"}


class DocumentExportView(ContentView):
    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        return (JSONRenderer(), "application/json")  # `?format=` names the file's format

    @extend_schema(
        parameters=[OpenApiParameter("format", str, enum=list(EXPORT_TYPES), description="md (default) or html")],
        responses={(200, "text/markdown"): OpenApiTypes.STR, (200, "text/html"): OpenApiTypes.STR, **platform_errors()},
        summary="Export a document as Markdown or HTML",
    )
    def get(self, request: Request, document_id: int) -> HttpResponse:
        document = _document(request, document_id, trashed=None)
        fmt = request.query_params.get("format", "md")
        if fmt not in EXPORT_TYPES:
            raise DocumentError("Export as md or html.", param="format")
        if fmt == "md":
            content = f"# {document.title}\n\n{document.body}".rstrip() + "\n"
        else:
            content = (
                f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{escape(document.title)}</title></head>'
                f"<body><h1>{escape(document.title)}</h1>{render_markdown(document.body, images=True)}</body></html>"
            )
        response = HttpResponse(content, content_type=EXPORT_TYPES[fmt])
        response["Content-Disposition"] = f'attachment; filename="document-{document.pk}.{fmt}"'
        return response


# ---------------------------------------------------------------------------- presets


class VariableOut(serializers.Serializer):
    name = serializers.CharField()
    label = serializers.CharField()  # type: ignore[assignment]  # the field is named label
    type = serializers.CharField()
    required = serializers.BooleanField()  # type: ignore[assignment]  # the field is named required
    options = serializers.ListField(child=serializers.CharField(), required=False)
    max_length = serializers.IntegerField(required=False)
    min = serializers.CharField(required=False, allow_null=True)
    max = serializers.CharField(required=False, allow_null=True)
    default = serializers.CharField(required=False)


class PresetOut(serializers.Serializer):
    id = serializers.IntegerField()
    scope = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    category = serializers.CharField()
    tags = serializers.ListField(child=serializers.CharField())
    icon = serializers.CharField()
    template = serializers.CharField()
    variables = VariableOut(many=True)
    model = serializers.CharField(source="default_model.model_id", allow_null=True, default=None)
    temperature = serializers.DecimalField(max_digits=3, decimal_places=2, allow_null=True)
    system_prompt = serializers.CharField()
    output = serializers.CharField()
    usage_count = serializers.IntegerField()
    last_used_at = serializers.DateTimeField(allow_null=True)
    favourite = serializers.BooleanField(source="is_favourite", default=False)


class PresetFilterIn(serializers.Serializer):
    q = serializers.CharField(required=False, max_length=200)
    category = serializers.ChoiceField(choices=Preset.Category.choices, required=False)
    scope = serializers.ChoiceField(choices=Preset.Scope.choices, required=False)
    output = serializers.ChoiceField(choices=Preset.Output.choices, required=False)
    favourites = serializers.BooleanField(required=False, default=False)


class PresetIn(serializers.Serializer):
    scope = serializers.ChoiceField(choices=[("personal", "Personal"), ("workspace", "Workspace")], default="personal")
    name = serializers.CharField(max_length=100)
    description = serializers.CharField(max_length=300, required=False, allow_blank=True)
    category = serializers.ChoiceField(choices=Preset.Category.choices, required=False)
    tags = serializers.ListField(child=serializers.CharField(max_length=40), required=False, max_length=10)
    icon = serializers.CharField(max_length=8, required=False, allow_blank=True)
    template = serializers.CharField(trim_whitespace=False)
    variables = serializers.ListField(child=serializers.DictField(), required=False)
    model = serializers.CharField(required=False, allow_null=True, max_length=100)
    temperature = serializers.DecimalField(
        max_digits=3, decimal_places=2, required=False, allow_null=True, min_value=0, max_value=2
    )
    system_prompt = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    output = serializers.ChoiceField(choices=Preset.Output.choices, required=False)


class PresetUpdateIn(PresetIn):
    scope = None  # type: ignore[assignment]
    name = serializers.CharField(max_length=100, required=False)
    template = serializers.CharField(trim_whitespace=False, required=False)


class RenderIn(serializers.Serializer):
    values = serializers.DictField(child=serializers.CharField(allow_blank=True, trim_whitespace=False), default=dict)


class RenderOut(serializers.Serializer):
    prompt = serializers.CharField()
    system_prompt = serializers.CharField()
    model = serializers.CharField(allow_null=True)
    temperature = serializers.DecimalField(max_digits=3, decimal_places=2, allow_null=True)
    output = serializers.CharField()


def _preset_fields(values: dict[str, Any]) -> dict[str, Any]:
    fields = {k: v for k, v in values.items() if k not in ("scope", "model")}
    if "model" in values:
        model_id = values["model"]
        fields["default_model"] = AIModel.objects.filter(model_id=model_id).first() if model_id else None
        if model_id and fields["default_model"] is None:
            raise PresetError(f"Unknown model {model_id}.", param="model")
    return fields


def _preset(request: Request, preset_id: int) -> Preset:
    who = caller(request)
    preset = visible_preset(workspace=who.workspace, user=who.user, preset_id=preset_id)
    if preset is None:
        raise Http404("No such preset.")
    return preset


class PresetListView(ContentView):
    @extend_schema(
        parameters=[PresetFilterIn, *PAGE_PARAMETERS],
        operation_id="api_v1_presets_list",
        responses={200: paginated(PresetOut), **platform_errors()},
        summary="The presets the caller can use: their own, the workspace's and the library's (see scope)",
    )
    def get(self, request: Request) -> Response:
        who = caller(request)
        filters = PresetFilters(**query(request, PresetFilterIn))
        return _paginated(
            self, request, visible_presets(workspace=who.workspace, user=who.user, filters=filters), PresetOut
        )

    @extend_schema(request=PresetIn, responses={201: PresetOut, **platform_errors()}, summary="Create a preset")
    def post(self, request: Request) -> Response:
        who = caller(request)
        data = PresetIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        preset = preset_create(
            workspace=who.workspace, user=who.user, scope=values.get("scope", "personal"), **_preset_fields(values)
        )
        return Response(PresetOut(preset).data, status=status.HTTP_201_CREATED)


class PresetDetailView(ContentView):
    @extend_schema(responses={200: PresetOut, **platform_errors()}, summary="One preset")
    def get(self, request: Request, preset_id: int) -> Response:
        return Response(PresetOut(_preset(request, preset_id)).data)

    @extend_schema(request=PresetUpdateIn, responses={200: PresetOut, **platform_errors()}, summary="Change a preset")
    def patch(self, request: Request, preset_id: int) -> Response:
        preset = _preset(request, preset_id)
        data = PresetUpdateIn(data=request.data)
        data.is_valid(raise_exception=True)
        updated = preset_update(preset=preset, user=caller(request).user, **_preset_fields(dict(data.validated_data)))
        return Response(PresetOut(updated).data)

    @extend_schema(responses={204: None, **platform_errors()}, summary="Delete a preset")
    def delete(self, request: Request, preset_id: int) -> Response:
        preset_delete(preset=_preset(request, preset_id), user=caller(request).user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class PresetRenderView(ContentView):
    permission_classes = [ReadScope]  # rendering changes nothing the caller owns: reading is enough

    @extend_schema(
        request=RenderIn,
        responses={200: RenderOut, **platform_errors()},
        summary="Fill a preset's variables (the use is counted): the prompt, or 400 invalid_preset_values",
    )
    def post(self, request: Request, preset_id: int) -> Response:
        preset = _preset(request, preset_id)
        data = RenderIn(data=request.data)
        data.is_valid(raise_exception=True)
        who = caller(request)
        rendered = preset_use(
            preset=preset, user=who.user, workspace=who.workspace, values=data.validated_data["values"]
        )
        return Response(
            RenderOut(
                {
                    "prompt": rendered.prompt,
                    "system_prompt": rendered.system_prompt,
                    "model": rendered.model.model_id if rendered.model else None,
                    "temperature": rendered.temperature,
                    "output": rendered.output,
                }
            ).data
        )
