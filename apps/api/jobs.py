"""`/api/v1/jobs/`: media jobs through the platform API (DRF) — create, list, poll, cancel.

Same authentication as the rest of the platform API (a session in its current workspace, or a
workspace API key: `platform_read` to read, `platform_write` to change, plus the kind's scope —
`images`, or `audio` for speech, transcription and voice cloning — to create). Another
workspace's job answers 404.

A job is created with a JSON body, or — for the kinds that take audio (`transcription`,
`voice_clone`) — as multipart/form-data: `kind`, `model`, optional `idempotency_key` and
`parameters` (a JSON object, as text) as fields, and the audio as `file` (a transcription) or
`samples` (a voice clone, repeated for each sample). The files are checked as everywhere else
(by content, within the plan's upload limit: 413 when larger); the answer is the job, to poll.

The result links of a job given to an API key are bearer capabilities (anyone holding one can
download the file until it expires, without a key); `?link_ttl=` (seconds, 10 to 300) makes them
shorter-lived. Errors are in the platform's shape (`platform_exception_handler`).
"""

from __future__ import annotations

import uuid
from functools import partial
from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from apps.api.docs import LINK_TTL_DESCRIPTION, LINK_TTL_PARAMETER, PAGE_PARAMETERS, paginated, platform_errors
from apps.api.fields import IdentifierField, StoredDictField, StoredJSONField
from apps.api.openai import key_reserve
from apps.api.platform import Pages, PlatformView, caller, query
from apps.apikeys.models import Scope
from apps.apikeys.services import apikey_check_model, apikey_check_scope
from apps.credits.amounts import to_credits
from apps.generation.models import AIModel
from apps.media.exceptions import MediaError
from apps.media.models import GenerationJob, JobKind, JobStatus
from apps.media.selectors import job_list, job_results, media_file_json
from apps.media.services import job_cancel, job_create, job_create_with_uploads
from apps.media.storage import DEFAULT_URL_TTL, url_ttl
from apps.workspaces.roles import Perm
from apps.workspaces.services import require_perm

KIND_SCOPES = {
    JobKind.IMAGE: Scope.IMAGES,
    JobKind.SPEECH: Scope.AUDIO,
    JobKind.TRANSCRIPTION: Scope.AUDIO,
    JobKind.VOICE_CLONE: Scope.AUDIO,
}
# The multipart field that carries each upload kind's audio.
UPLOAD_FIELDS = {JobKind.TRANSCRIPTION: "file", JobKind.VOICE_CLONE: "samples"}


class MediaView(PlatformView):
    """A media endpoint. MediaError and GenerationRefused are answered like every other error
    of the platform API (`apps.api.errors.api_error_for`), with the parameter they name."""


class JobOut(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    model = serializers.CharField(source="model_label")
    status = serializers.CharField()
    progress = serializers.IntegerField()
    error = serializers.CharField()
    parameters = serializers.JSONField()
    credits_reserved = serializers.SerializerMethodField()
    credits_charged = serializers.SerializerMethodField()
    attempts = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    results_expired = serializers.SerializerMethodField(help_text="The result files were deleted (plan retention).")
    results_expired_at = serializers.DateTimeField(allow_null=True)

    def get_credits_reserved(self, obj: GenerationJob) -> str:
        return str(to_credits(obj.credits_reserved_units))

    def get_credits_charged(self, obj: GenerationJob) -> str:
        return str(to_credits(obj.credits_charged_units))

    def get_results_expired(self, obj: GenerationJob) -> bool:
        return obj.results_expired_at is not None


class JobDetailOut(JobOut):
    results = serializers.SerializerMethodField()

    def get_results(self, obj: GenerationJob) -> list[dict[str, Any]]:
        request = self.context["request"]
        # A session's links are bound to its member; a key's are bearer links (see LINK_TTL_DESCRIPTION).
        person = caller(request).person if request.auth is None else None
        ttl = self.context.get("link_ttl", DEFAULT_URL_TTL)
        return [media_file_json(f, request=request, user=person, ttl=ttl) for f in job_results(job=obj)]


class JobIn(serializers.Serializer):
    kind = serializers.ChoiceField(choices=JobKind.choices)
    model = IdentifierField(max_length=100)
    parameters = StoredDictField()
    idempotency_key = IdentifierField(max_length=100, required=False)


class JobUploadIn(serializers.Serializer):
    """The multipart form of a job that takes audio; the files are read from `request.FILES`."""

    kind = serializers.ChoiceField(choices=list(UPLOAD_FIELDS))
    model = IdentifierField(max_length=100)
    parameters = StoredJSONField(binary=True, required=False, help_text="A JSON object, as text.")
    idempotency_key = IdentifierField(max_length=100, required=False)
    file = serializers.FileField(required=False, help_text="A transcription's audio.")
    samples = serializers.ListField(child=serializers.FileField(), required=False, help_text="A voice's samples.")

    def validate_parameters(self, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise serializers.ValidationError("parameters must be a JSON object.")
        return value


class JobFilterIn(serializers.Serializer):
    kind = serializers.ChoiceField(choices=JobKind.choices, required=False)
    status = serializers.ChoiceField(choices=JobStatus.choices, required=False)


def _job(request: Request, job_id: int) -> GenerationJob:
    return get_object_or_404(GenerationJob.objects.for_workspace(caller(request).workspace), pk=job_id)


def _detail_context(request: Request) -> dict[str, Any]:
    return {"request": request, "link_ttl": url_ttl(request.query_params.get("link_ttl"))}


class JobListView(MediaView):
    @extend_schema(
        parameters=[
            OpenApiParameter("kind", str, enum=JobKind.values),
            OpenApiParameter("status", str, enum=JobStatus.values),
            *PAGE_PARAMETERS,
        ],
        operation_id="api_v1_jobs_list",
        responses={200: paginated(JobOut), **platform_errors()},
        summary="Media jobs, newest first",
    )
    def get(self, request: Request) -> Response:
        jobs = job_list(workspace=caller(request).workspace, **query(request, JobFilterIn))
        paginator = Pages()
        page = paginator.paginate_queryset(jobs, request, view=self)
        return paginator.get_paginated_response(JobOut(page, many=True).data)

    @extend_schema(
        request={"application/json": JobIn, "multipart/form-data": JobUploadIn},
        parameters=[LINK_TTL_PARAMETER],
        responses={202: JobDetailOut, **platform_errors(402, 409, 415, 429, 502, 503)},
        summary="Start a media job (JSON, or multipart with the audio of a transcription or voice clone)",
        description=LINK_TTL_DESCRIPTION,
    )
    def post(self, request: Request) -> Response:
        context = _detail_context(request)
        files: list[Any] | None = None
        if (request.content_type or "").startswith("multipart/form-data"):
            data: serializers.Serializer = JobUploadIn(data=request.data)
            data.is_valid(raise_exception=True)
            field = UPLOAD_FIELDS[data.validated_data["kind"]]
            files = request.FILES.getlist(field)
            if not files:
                raise MediaError(f"Send the audio as the `{field}` field.", param=field)
        else:
            data = JobIn(data=request.data)
            data.is_valid(raise_exception=True)
        who = caller(request)
        values = data.validated_data
        model = AIModel.objects.select_related("provider").filter(model_id=values["model"]).first()
        if model is None:
            raise exceptions.NotFound(f"The model `{values['model']}` does not exist.")
        key_suffix = values.get("idempotency_key") or uuid.uuid4().hex
        options: dict[str, Any] = {
            "workspace": who.workspace,
            "kind": values["kind"],
            "model": model,
            "parameters": values.get("parameters") or {},
        }
        if who.key is not None:
            apikey_check_scope(key=who.key, scope=KIND_SCOPES[values["kind"]])
            apikey_check_model(key=who.key, model_id=model.model_id)
            options.update(
                api_key=who.key,
                user=who.person,
                idempotency_key=f"jobs:key{who.key.pk}:{key_suffix}",
                reserve=partial(key_reserve, who.key),
            )
        else:
            require_perm(workspace=who.workspace, user=who.user, perm=Perm.USE)
            options.update(user=who.user, idempotency_key=f"jobs:user{who.user.pk}:{key_suffix}")
        job = job_create_with_uploads(files=files, **options) if files is not None else job_create(**options)
        job.refresh_from_db()
        return Response(JobDetailOut(job, context=context).data, status=status.HTTP_202_ACCEPTED)


class JobDetailView(MediaView):
    @extend_schema(
        parameters=[LINK_TTL_PARAMETER],
        responses={200: JobDetailOut, **platform_errors()},
        summary="A media job: status, progress, results",
        description=LINK_TTL_DESCRIPTION,
    )
    def get(self, request: Request, job_id: int) -> Response:
        context = _detail_context(request)
        return Response(JobDetailOut(_job(request, job_id), context=context).data)


class JobCancelView(MediaView):
    @extend_schema(
        request=None,
        responses={200: JobOut, **platform_errors(409)},
        summary="Cancel a queued or running job (releases its hold)",
    )
    def post(self, request: Request, job_id: int) -> Response:
        job = job_cancel(job=_job(request, job_id), acting_user=caller(request).person)
        return Response(JobOut(job).data)
