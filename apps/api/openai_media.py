"""`POST /v1/images/generations`, `POST /v1/audio/speech` and `POST /v1/audio/transcriptions`,
OpenAI-compatible: same keys, scopes, rate limits and error
shape as `/v1/chat/completions` (helpers imported from `apps.api.openai`).

Synchronous from the client's view: the request creates a job (credits held through the key,
with its spending cap) and waits for it, polling the database every `POLL_SECONDS`, up to
`MEDIA_API_WAIT_SECONDS`. On time-out the client gets a 504 in OpenAI's shape with the job id;
the job keeps running and can be fetched from `/api/v1/jobs/<id>/`.

Text that is stored with the job follows `apps.core.validators` (no NUL or control characters;
none at all in identifiers such as `model` or `voice`): a 400 naming the parameter.

Image URLs (`response_format: url`) are bearer capabilities: anyone holding one can download
the image until it expires, one hour by default; `link_ttl` (seconds, 10 to 3600) asks for less.
"""

from __future__ import annotations

import asyncio
import base64
import time
from functools import partial
from typing import Any, Literal

from django.http import HttpRequest, HttpResponse, JsonResponse

from apps.api.errors import ApiError, domain_error
from apps.api.openai import (
    CHARGED_HEADER,
    REMAINING_HEADER,
    credits_remaining,
    json_body,
    key_from_request,
    key_reserve,
    model_for_key,
    openai_view,
)
from apps.apikeys.models import ApiKey, Scope
from apps.apikeys.services import apikey_check_scope
from apps.core.errors import DomainError
from apps.core.validators import json_control_character, problem
from apps.credits.amounts import to_credits
from apps.generation.models import AIModel, Capability
from apps.generation.providers.audio import TRANSCRIPT_CONTENT_TYPES, TRANSCRIPT_FORMATS, transcript_as
from apps.generation.services import db_step
from apps.media.models import GenerationJob, JobKind, JobStatus, MediaFile, MediaKind
from apps.media.services import job_create, job_create_with_uploads
from apps.media.storage import media_file_url, url_ttl
from apps.ratelimits.services import ratelimit_enforce

POLL_SECONDS = 0.1
DEFAULT_WAIT_SECONDS = 120
URL_TTL_SECONDS = 3600  # OpenAI's URLs last an hour
RESPONSE_FORMATS = ("url", "b64_json")


def _media_model(key: ApiKey, model_id: str | None, *, capability: Capability, what: str, does: str) -> AIModel:
    """The model named in the request (see `model_for_key`), or without one OpenAI's default
    model, here: the first model of this kind the workspace and the key may use."""
    if model_id is not None:
        return model_for_key(key, model_id, capability=capability, what=does)
    for candidate in AIModel.objects.order_by("position", "model_id").usable_for(key.workspace, capability):
        if key.allows_model(candidate.model_id):
            return candidate
    raise ApiError(404, f"No {what} model is available to this key.", param="model", code="model_not_found")


Rule = Literal["text", "identifier"]


def _checked(name: str, value: str, rule: Rule) -> str:
    message = problem(value, identifier=rule == "identifier")
    if message is not None:
        raise ApiError(400, f"{name}: {message}", param=name, code="invalid_value")
    return value


def _string(data: dict[str, Any], name: str, rule: Rule = "identifier") -> str | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiError(400, f"{name}: must be a string.", param=name, code="invalid_value")
    return _checked(name, value, rule)


def _required(value: str | None, name: str) -> str:
    if not value:
        raise ApiError(400, f"{name}: This field is required.", param=name, code="missing_required_parameter")
    return value


def _start(request: HttpRequest, request_id: str) -> tuple[ApiKey, int, str, int]:
    """Authenticate, validate, create the job (holding the credits). In eager mode (tests, a
    fresh clone) the job has already run when this returns."""
    key = key_from_request(request)
    apikey_check_scope(key=key, scope=Scope.IMAGES)
    data = json_body(request)
    response_format = _string(data, "response_format") or "url"
    if response_format not in RESPONSE_FORMATS:
        raise ApiError(400, "response_format: use 'url' or 'b64_json'.", param="response_format", code="invalid_value")
    _string(data, "user")
    ttl = url_ttl(data.get("link_ttl"), maximum=URL_TTL_SECONDS)
    model = _media_model(
        key, _string(data, "model"), capability=Capability.IMAGES, what="image", does="image generation"
    )
    parameters = {name: data[name] for name in ("prompt", "n", "size", "quality", "style") if name in data}
    if "prompt" not in data:
        raise ApiError(400, "prompt: This field is required.", param="prompt", code="missing_required_parameter")
    if isinstance(data["prompt"], str):  # another type is the job's to refuse, with its message
        _checked("prompt", data["prompt"], "text")
    job = _create_job(key, kind=JobKind.IMAGE, model=model, parameters=parameters, request_id=request_id)
    return key, job.pk, response_format, ttl


def _job_state(job_id: int) -> GenerationJob:
    return GenerationJob.objects.get(pk=job_id)


def _result(request: HttpRequest, key: ApiKey, job_id: int, response_format: str, ttl: int) -> dict[str, Any]:
    files = MediaFile.objects.filter(job_id=job_id, kind=MediaKind.IMAGE).order_by("id")
    data = []
    for media_file in files:
        item: dict[str, Any] = {"revised_prompt": media_file.metadata.get("revised_prompt")}
        if response_format == "b64_json":
            with media_file.file.open("rb") as handle:
                item["b64_json"] = base64.b64encode(handle.read()).decode()
        else:
            item["url"] = request.build_absolute_uri(media_file_url(media_file, ttl=ttl))
        data.append(item)
    return {"data": data, "remaining": credits_remaining(key)}


def _wait_seconds() -> float:
    from constance import config

    return float(getattr(config, "MEDIA_API_WAIT_SECONDS", DEFAULT_WAIT_SECONDS))


async def _wait(job_id: int, *, subject: str, activity: str) -> GenerationJob:
    """Poll the job until it ends (or the wait times out: 504 naming the job); a failed or
    cancelled job is an error in OpenAI's shape."""
    deadline = time.monotonic() + await db_step(_wait_seconds)
    job = await db_step(_job_state, job_id)
    while not job.is_finished:
        if time.monotonic() >= deadline:
            raise ApiError(
                504,
                f"The {subject} is taking longer than expected. It is still being processed as job {job_id}: "
                f"fetch it from /api/v1/jobs/{job_id}/.",
                code="timeout",
                type="server_error",
            )
        await asyncio.sleep(POLL_SECONDS)
        job = await db_step(_job_state, job_id)
    if job.status == JobStatus.FAILED:
        raise ApiError(503, job.error or f"The {activity} failed.", code="upstream_error")
    if job.status == JobStatus.CANCELLED:
        raise ApiError(409, f"The {activity} was cancelled.", code="cancelled")
    return job


@openai_view(("POST",))
async def images_generations(request: HttpRequest) -> HttpResponse:
    request_id = getattr(request, "request_id", "") or str(time.time_ns())
    key, job_id, response_format, ttl = await db_step(_start, request, request_id)
    job = await _wait(job_id, subject="image", activity="image generation")
    result = await db_step(_result, request, key, job_id, response_format, ttl)
    response = JsonResponse({"created": int(job.created_at.timestamp()), "data": result["data"]})
    response[CHARGED_HEADER] = str(to_credits(job.credits_charged_units))
    response[REMAINING_HEADER] = result["remaining"]
    return response


# ---------------------------------------------------------------------------- audio


def _create_job(
    key: ApiKey,
    *,
    kind: str,
    model: AIModel,
    parameters: dict[str, Any],
    request_id: str,
    files: list[Any] | None = None,
) -> GenerationJob:
    """Create the job through the key (its spending cap holds), storing `files` as its uploads
    when given (within the plan's upload limit)."""
    found = json_control_character(parameters)
    if found is not None:  # stored as jsonb, which refuses NUL
        path, message = found
        raise ApiError(400, f"{path}: {message}", param=path.split(".", 1)[0] or None, code="invalid_value")
    ratelimit_enforce(workspace=key.workspace, api_key=key)
    options: dict[str, Any] = {
        "workspace": key.workspace,
        "api_key": key,
        "kind": kind,
        "model": model,
        "parameters": parameters,
        "idempotency_key": f"api:{key.pk}:{request_id}",
        "reserve": partial(key_reserve, key),
    }
    try:
        return job_create_with_uploads(files=files, **options) if files is not None else job_create(**options)
    except DomainError as exc:  # as an ApiError, so the caller can rename its param
        raise domain_error(exc) from exc


def _speech_start(request: HttpRequest, request_id: str) -> tuple[ApiKey, int]:
    key = key_from_request(request)
    apikey_check_scope(key=key, scope=Scope.AUDIO)
    data = json_body(request)
    for name in ("input", "instructions"):
        _string(data, name, "text")
    for name in ("voice", "response_format", "user"):
        _string(data, name)
    model_id = _required(_string(data, "model"), "model")  # required by OpenAI's spec too
    _required(data.get("input"), "input")
    _required(data.get("voice"), "voice")
    model = _media_model(key, model_id, capability=Capability.SPEECH, what="speech", does="speech")
    parameters: dict[str, Any] = {"text": data["input"], "voice": data["voice"]}
    if data.get("speed") is not None:
        parameters["speed"] = data["speed"]
    if data.get("response_format"):
        parameters["format"] = data["response_format"]
    if data.get("instructions"):
        parameters["instructions"] = data["instructions"]
    try:
        job = _create_job(key, kind=JobKind.SPEECH, model=model, parameters=parameters, request_id=request_id)
    except ApiError as exc:
        # OpenAI's parameter names, not the job's.
        exc.param = {"text": "input", "format": "response_format"}.get(exc.param or "", exc.param)
        raise
    return key, job.pk


def _speech_audio(job_id: int) -> tuple[bytes, str]:
    media_file = MediaFile.objects.filter(job_id=job_id, kind=MediaKind.AUDIO).order_by("id").first()
    if media_file is None:
        raise ApiError(503, "The speech synthesis produced no audio.", code="upstream_error")
    with media_file.file.open("rb") as handle:
        return handle.read(), media_file.content_type


@openai_view(("POST",))
async def audio_speech(request: HttpRequest) -> HttpResponse:
    request_id = getattr(request, "request_id", "") or str(time.time_ns())
    key, job_id = await db_step(_speech_start, request, request_id)
    job = await _wait(job_id, subject="speech", activity="speech synthesis")
    audio, content_type = await db_step(_speech_audio, job_id)
    response = HttpResponse(audio, content_type=content_type)
    response[CHARGED_HEADER] = str(to_credits(job.credits_charged_units))
    response[REMAINING_HEADER] = await db_step(credits_remaining, key)
    return response


def _form_string(request: HttpRequest, name: str, rule: Rule = "identifier") -> str | None:
    value = request.POST.get(name)
    return _checked(name, value, rule) if value else None


def _transcription_start(request: HttpRequest, request_id: str) -> tuple[ApiKey, int, str]:
    key = key_from_request(request)
    apikey_check_scope(key=key, scope=Scope.AUDIO)
    if not request.content_type or request.content_type != "multipart/form-data":
        raise ApiError(
            400, "Send the audio as multipart/form-data with a `file` field.", param="file", code="invalid_request"
        )
    upload = request.FILES.get("file")
    if upload is None:
        raise ApiError(400, "file: This field is required.", param="file", code="missing_required_parameter")
    response_format = _form_string(request, "response_format") or "json"
    if response_format not in TRANSCRIPT_FORMATS:
        raise ApiError(
            400,
            f"response_format: use one of {', '.join(TRANSCRIPT_FORMATS)}.",
            param="response_format",
            code="invalid_value",
        )
    granularities = request.POST.getlist("timestamp_granularities[]") or request.POST.getlist("timestamp_granularities")
    if any(g not in ("segment", "word") for g in granularities):
        raise ApiError(
            400,
            "timestamp_granularities: use 'segment'.",
            param="timestamp_granularities",
            code="invalid_value",
        )
    if "word" in granularities:
        raise ApiError(
            400,
            "timestamp_granularities: word timestamps are not supported; use 'segment'.",
            param="timestamp_granularities",
            code="invalid_value",
        )
    if granularities and response_format != "verbose_json":
        raise ApiError(
            400,
            "timestamp_granularities requires response_format 'verbose_json'.",
            param="timestamp_granularities",
            code="invalid_value",
        )
    model = _media_model(
        key,
        _required(_form_string(request, "model"), "model"),  # required by OpenAI's spec too
        capability=Capability.TRANSCRIPTION,
        what="transcription",
        does="transcription",
    )
    parameters: dict[str, Any] = {
        "language": _form_string(request, "language") or "",
        "prompt": _form_string(request, "prompt", "text") or "",
        "format": response_format,
        "timestamps": bool(granularities) or response_format == "verbose_json",
    }
    # Too large (413), not audio or corrupt (400): refused before any job or hold exists; an
    # upload no job took is not kept.
    job = _create_job(
        key, kind=JobKind.TRANSCRIPTION, model=model, parameters=parameters, request_id=request_id, files=[upload]
    )
    return key, job.pk, response_format


def _transcript(job_id: int, response_format: str) -> str:
    from apps.media.kinds import transcript_from_json

    media_file = MediaFile.objects.filter(job_id=job_id, kind=MediaKind.TRANSCRIPT).order_by("id").first()
    if media_file is None:
        raise ApiError(503, "The transcription produced no transcript.", code="upstream_error")
    return transcript_as(transcript_from_json(media_file.metadata["transcript"]), response_format)


@openai_view(("POST",))
async def audio_transcriptions(request: HttpRequest) -> HttpResponse:
    request_id = getattr(request, "request_id", "") or str(time.time_ns())
    key, job_id, response_format = await db_step(_transcription_start, request, request_id)
    job = await _wait(job_id, subject="transcription", activity="transcription")
    text = await db_step(_transcript, job_id, response_format)
    response = HttpResponse(text.encode(), content_type=TRANSCRIPT_CONTENT_TYPES[response_format])
    response[CHARGED_HEADER] = str(to_credits(job.credits_charged_units))
    response[REMAINING_HEADER] = await db_step(credits_remaining, key)
    return response
