"""`POST /v1/images/generations`, OpenAI-compatible: same keys, scopes, rate limits and error
shape as `/v1/chat/completions` (helpers imported from `apps.api.openai`).

Synchronous from the client's view: the request creates a job (credits held through the key,
with its spending cap) and waits for it, polling the database every `POLL_SECONDS`, up to
`MEDIA_API_WAIT_SECONDS`. On time-out the client gets a 504 in OpenAI's shape with the job id;
the job keeps running and can be fetched from `/api/v1/jobs/<id>/`.
"""

from __future__ import annotations

import asyncio
import base64
import time
from functools import partial
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse

from apps.api.errors import ApiError
from apps.api.openai import (
    CHARGED_HEADER,
    REMAINING_HEADER,
    _authenticate,
    _body,
    _key_reserve,
    _remaining,
    openai_view,
)
from apps.apikeys.models import ApiKey, Scope
from apps.apikeys.services import apikey_check_model, apikey_check_scope
from apps.credits.amounts import to_credits
from apps.generation.models import AIModel
from apps.generation.services import db_step
from apps.media.exceptions import MediaError
from apps.media.models import GenerationJob, JobKind, JobStatus, MediaFile, MediaKind
from apps.media.services import job_create
from apps.media.storage import media_file_url
from apps.ratelimits.services import ratelimit_enforce

POLL_SECONDS = 0.1
DEFAULT_WAIT_SECONDS = 120
URL_TTL_SECONDS = 3600  # OpenAI's URLs last an hour
RESPONSE_FORMATS = ("url", "b64_json")


def _api_error(exc: MediaError) -> ApiError:
    return ApiError(exc.status_code, exc.message, param=exc.param, code=exc.code)


def _image_model(key: ApiKey, model_id: str | None) -> AIModel:
    models = AIModel.objects.select_related("provider").filter(supports_images=True)
    if model_id is None:
        # OpenAI's default model, here: the first image model this key may use.
        for candidate in models.available().order_by("position", "model_id"):
            if candidate.provider.is_configured and key.allows_model(candidate.model_id):
                return candidate
        raise ApiError(404, "No image model is available to this key.", param="model", code="model_not_found")
    model = AIModel.objects.select_related("provider").filter(model_id=model_id).first()
    if model is None or not model.enabled or not model.provider.enabled or not model.provider.is_configured:
        raise ApiError(
            404,
            f"The model `{model_id}` does not exist or you do not have access to it.",
            param="model",
            code="model_not_found",
        )
    apikey_check_model(key=key, model_id=model_id)
    if not model.supports_images:
        raise ApiError(
            400, f"The model `{model_id}` does not support image generation.", param="model", code="model_not_supported"
        )
    return model


def _string(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise ApiError(400, f"{name}: must be a string.", param=name, code="invalid_value")
    return value


def _start(request: HttpRequest, request_id: str) -> tuple[ApiKey, int, str]:
    """Authenticate, validate, create the job (holding the credits). In eager mode (tests, a
    fresh clone) the job has already run when this returns."""
    key = _authenticate(request)
    apikey_check_scope(key=key, scope=Scope.IMAGES)
    data = _body(request)
    response_format = _string(data, "response_format") or "url"
    if response_format not in RESPONSE_FORMATS:
        raise ApiError(400, "response_format: use 'url' or 'b64_json'.", param="response_format", code="invalid_value")
    _string(data, "user")
    model = _image_model(key, _string(data, "model"))
    parameters = {name: data[name] for name in ("prompt", "n", "size", "quality", "style") if name in data}
    if "prompt" not in data:
        raise ApiError(400, "prompt: This field is required.", param="prompt", code="missing_required_parameter")
    ratelimit_enforce(workspace=key.workspace, api_key=key)
    try:
        job = job_create(
            workspace=key.workspace,
            api_key=key,
            kind=JobKind.IMAGE,
            model=model,
            parameters=parameters,
            idempotency_key=f"api:{key.pk}:{request_id}",
            reserve=partial(_key_reserve, key),
        )
    except MediaError as exc:
        raise _api_error(exc) from exc
    return key, job.pk, response_format


def _job_state(job_id: int) -> GenerationJob:
    return GenerationJob.objects.get(pk=job_id)


def _result(request: HttpRequest, key: ApiKey, job_id: int, response_format: str) -> dict[str, Any]:
    files = MediaFile.objects.filter(job_id=job_id, kind=MediaKind.IMAGE).order_by("id")
    data = []
    for media_file in files:
        item: dict[str, Any] = {"revised_prompt": media_file.metadata.get("revised_prompt")}
        if response_format == "b64_json":
            with media_file.file.open("rb") as handle:
                item["b64_json"] = base64.b64encode(handle.read()).decode()
        else:
            item["url"] = request.build_absolute_uri(media_file_url(media_file, ttl=URL_TTL_SECONDS))
        data.append(item)
    return {"data": data, "remaining": _remaining(key)}


def _wait_seconds() -> float:
    from constance import config

    return float(getattr(config, "MEDIA_API_WAIT_SECONDS", DEFAULT_WAIT_SECONDS))


@openai_view(("POST",))
async def images_generations(request: HttpRequest) -> HttpResponse:
    request_id = getattr(request, "request_id", "") or str(time.time_ns())
    key, job_id, response_format = await db_step(_start, request, request_id)
    deadline = time.monotonic() + await db_step(_wait_seconds)
    job = await db_step(_job_state, job_id)
    while not job.is_finished:
        if time.monotonic() >= deadline:
            raise ApiError(
                504,
                f"The image is taking longer than expected. It is still being generated as job {job_id}: "
                f"fetch it from /api/v1/jobs/{job_id}/.",
                code="timeout",
                type="server_error",
            )
        await asyncio.sleep(POLL_SECONDS)
        job = await db_step(_job_state, job_id)
    if job.status == JobStatus.FAILED:
        raise ApiError(503, job.error or "The image generation failed.", code="upstream_error")
    if job.status == JobStatus.CANCELLED:
        raise ApiError(409, "The image generation was cancelled.", code="cancelled")
    result = await db_step(_result, request, key, job_id, response_format)
    response = JsonResponse({"created": int(job.created_at.timestamp()), "data": result["data"]})
    response[CHARGED_HEADER] = str(to_credits(job.credits_charged_units))
    response[REMAINING_HEADER] = result["remaining"]
    return response
