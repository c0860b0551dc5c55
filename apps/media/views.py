"""The media pages: image studio (prompt form, live job progress over `/ws/jobs/<id>/` with
a polling fallback), the workspace's gallery, the job status JSON and the signed local
download view. Every id is looked up through the request's workspace: another's is 404."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.core.http import WorkspaceRequest
from apps.credits.exceptions import CreditsError
from apps.generation.models import AIModel, Capability
from apps.media.exceptions import MediaError
from apps.media.forms import GalleryFilterForm, ImageForm, SpeechForm, TranscriptionForm, VoiceCloneForm
from apps.media.models import GenerationJob, JobKind, MediaFile, MediaKind, Voice
from apps.media.selectors import (
    GalleryFilters,
    audio_results,
    gallery_images,
    gallery_models,
    job_results,
    media_file_json,
    speech_voice_choices,
    speech_voice_names,
)
from apps.media.services import (
    job_cancel,
    job_create,
    job_create_with_uploads,
    media_file_delete,
    pricing_url,
    voice_cloning_refusal,
    voice_delete,
    voice_rename,
)
from apps.media.storage import download_token_read
from apps.presets.pages import preset_from_request
from apps.workspaces.decorators import workspace_required
from apps.workspaces.models import Membership, Workspace
from apps.workspaces.roles import Perm
from apps.workspaces.scoping import get_for_workspace_or_404

GALLERY_PAGE_SIZE = 24
AUDIO_PAGE_SIZE = 20
# The studio page of each job kind.
KIND_PAGES = {
    JobKind.IMAGE.value: "media:images",
    JobKind.SPEECH.value: "media:speech",
    JobKind.TRANSCRIPTION.value: "media:transcribe",
    JobKind.VOICE_CLONE.value: "media:voices",
}
TRANSCRIPT_DOWNLOADS = {
    "text": ("txt", "text"),
    "srt": ("srt", "srt"),
    "vtt": ("vtt", "vtt"),
    "json": ("json", "verbose_json"),
}


def studio_models(workspace: Workspace, capability: Capability) -> QuerySet[AIModel]:
    """The models a studio offers: those the workspace may use for `capability` (enabled,
    configured, in its plan), as a queryset for the form's choices, in picker order."""
    usable = [model.pk for model in AIModel.objects.usable_for(workspace, capability)]
    return AIModel.objects.filter(pk__in=usable).select_related("provider").order_by("position")


def _job(request: WorkspaceRequest, job_id: int) -> GenerationJob:
    return get_for_workspace_or_404(GenerationJob.objects.all(), request.workspace, pk=job_id)


def job_json(request: WorkspaceRequest, job: GenerationJob) -> dict[str, Any]:
    return {
        "id": job.pk,
        "kind": job.kind,
        "model": job.model_label,
        "status": job.status,
        "progress": job.progress,
        "error": job.error,
        "finished": job.is_finished,
        "parameters": job.parameters,
        "results_expired": job.results_expired_at is not None,
        "results": [media_file_json(f, user=request.user) for f in job_results(job=job)] if job.is_finished else [],
    }


def _studio_key(request: WorkspaceRequest, kind: str) -> str:
    """The idempotency key of a studio form: a resubmitted form (same nonce) makes no second job."""
    return f"studio-{kind}:{request.user.pk}:{request.POST.get('nonce') or uuid.uuid4().hex}"


def _studio_form(
    request: WorkspaceRequest, form_class: Any, kind: str, **options: Any
) -> tuple[Any, HttpResponse | None]:
    """A studio page's form and, when a POST made a job, the redirect to the kind's page
    showing it. A valid form becomes a job through the services (its files, in the form's
    `upload_field`, stored as the job's uploads); a refusal is put on the form, for the page to
    be shown again with a 400 (`form.is_bound`). `options` go to the form."""
    if request.method != "POST":
        return form_class(**options), None
    form = form_class(request.POST, request.FILES, **options)
    if not form.is_valid():
        return form, None
    create: dict[str, Any] = {
        "workspace": request.workspace,
        "user": request.user,
        "kind": kind,
        "model": form.cleaned_data["model"],
        "parameters": form.parameters(),
        "idempotency_key": _studio_key(request, kind),
    }
    upload_field = getattr(form, "upload_field", "")
    try:
        if upload_field:
            files = form.cleaned_data[upload_field]
            created = job_create_with_uploads(files=files if isinstance(files, list) else [files], **create)
        else:
            created = job_create(**create)
    except (MediaError, CreditsError) as exc:
        field = getattr(exc, "param", None)
        form.add_error(field if field in form.fields else None, exc.message)
        # A refusal a better plan lifts: the page links to the plans under the form.
        form.upgrade_url = getattr(exc, "upgrade_url", "")
        return form, None
    return form, redirect(f"{reverse(KIND_PAGES[kind])}?job={created.pk}")


@workspace_required(Perm.USE)
@require_http_methods(["GET", "POST"])
def image_studio(request: WorkspaceRequest) -> HttpResponse:
    models = studio_models(request.workspace, Capability.IMAGES)
    initial = {k: v for k, v in request.GET.items() if k in ImageForm.base_fields and k != "job"}
    form, submitted = _studio_form(request, ImageForm, JobKind.IMAGE, models=models, initial=initial)
    if submitted is not None:
        return submitted
    job: GenerationJob | None = None
    if request.GET.get("job", "").isdigit():
        job = _job(request, int(request.GET["job"]))
    return _studio_render(request, "media/studio.html", form=form, models=models, job=job)


@workspace_required(Perm.USE)
@require_POST
def image_studio_from_preset(request: WorkspaceRequest, preset_id: int) -> HttpResponse:
    """A preset filled in (`apps.presets`) opens the image studio with its prompt."""
    rendered = preset_from_request(request, preset_id)
    if isinstance(rendered, HttpResponse):
        return rendered
    return redirect(f"{reverse('media:images')}?{urlencode({'prompt': rendered.prompt[:4000]})}")


def _studio_render(
    request: WorkspaceRequest, template: str, *, form: Any, models: Any, job: GenerationJob | None, **extra: Any
) -> HttpResponse:
    """A studio page: its form (400 when a submission was refused), whether the workspace may use
    any model, the job asked for (`?job=`) with its state for the page's script, and `extra`."""
    context = {
        "form": form,
        "has_models": models.exists(),
        "job": job,
        "job_state": job_json(request, job) if job else None,
        "nonce": uuid.uuid4().hex,
        **extra,
    }
    return render(request, template, context, status=400 if form.is_bound else 200)


def _shown_job(request: WorkspaceRequest, kind: str) -> GenerationJob | None:
    if not request.GET.get("job", "").isdigit():
        return None
    return get_for_workspace_or_404(
        GenerationJob.objects.filter(kind=kind), request.workspace, pk=int(request.GET["job"])
    )


def _audio_page(request: WorkspaceRequest, kind: str) -> dict[str, Any]:
    """The page of the workspace's past results of `kind` (`page_obj`) and their JSON (`items`)."""
    page = Paginator(audio_results(workspace=request.workspace, kind=kind), AUDIO_PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    files = list(page.object_list)
    names: dict[str, str] = {}
    if kind == MediaKind.AUDIO:
        names = speech_voice_names(workspace=request.workspace, voices=(f.metadata.get("voice") or "" for f in files))
    items = []
    for media_file in files:
        item = media_file_json(media_file, user=request.user)
        item["job_id"] = media_file.job_id
        item["model"] = media_file.job.model_label if media_file.job is not None else ""
        if kind == MediaKind.AUDIO:
            voice = str(media_file.metadata.get("voice") or "")
            # By name, never by id: a cloned voice's current name, else the one kept with the file.
            item["voice"] = names.get(voice) or media_file.metadata.get("voice_name") or voice
        items.append(item)
    return {"page_obj": page, "items": items}


@workspace_required(Perm.USE)
@require_http_methods(["GET", "POST"])
def speech_studio(request: WorkspaceRequest) -> HttpResponse:
    models = studio_models(request.workspace, Capability.SPEECH)
    voices = speech_voice_choices(workspace=request.workspace, models=models)
    form, submitted = _studio_form(request, SpeechForm, JobKind.SPEECH, models=models, voices=voices)
    if submitted is not None:
        return submitted
    job = _shown_job(request, JobKind.SPEECH)
    page = _audio_page(request, MediaKind.AUDIO)
    return _studio_render(request, "media/speech.html", form=form, models=models, job=job, **page)


@workspace_required(Perm.USE)
@require_http_methods(["GET", "POST"])
def transcription_studio(request: WorkspaceRequest) -> HttpResponse:
    models = studio_models(request.workspace, Capability.TRANSCRIPTION)
    form, submitted = _studio_form(request, TranscriptionForm, JobKind.TRANSCRIPTION, models=models)
    if submitted is not None:
        return submitted
    job = _shown_job(request, JobKind.TRANSCRIPTION)
    transcript = None
    if job is not None and job.is_finished:
        output = MediaFile.objects.filter(job=job, kind=MediaKind.TRANSCRIPT).order_by("id").first()
        transcript = (output.metadata.get("transcript") or {}) if output is not None else None
    return _studio_render(
        request,
        "media/transcribe.html",
        form=form,
        models=models,
        job=job,
        transcript=transcript,
        downloads=list(TRANSCRIPT_DOWNLOADS),
        **_audio_page(request, MediaKind.TRANSCRIPT),
    )


@workspace_required(Perm.USE)
@require_http_methods(["GET", "POST"])
def voices(request: WorkspaceRequest) -> HttpResponse:
    """The workspace's cloned voices (rename, delete) and a form to clone one from samples, or
    a note on which plans include voice cloning."""
    models = studio_models(request.workspace, Capability.VOICE_CLONING)
    refusal = voice_cloning_refusal(request.workspace)
    form, submitted = _studio_form(request, VoiceCloneForm, JobKind.VOICE_CLONE, models=models)
    if submitted is not None:
        return submitted
    return _studio_render(
        request,
        "media/voices.html",
        form=form,
        models=models,
        job=_shown_job(request, JobKind.VOICE_CLONE),
        allowed=refusal is None,
        upgrade_note=refusal.message if refusal is not None else "",
        pricing_url=(refusal.upgrade_url if refusal is not None else "") or pricing_url(),
        voices=Voice.objects.for_workspace(request.workspace).select_related("model", "created_by"),
    )


@workspace_required(Perm.USE)
@require_POST
def voice_rename_view(request: WorkspaceRequest, voice_id: int) -> HttpResponse:
    voice = get_for_workspace_or_404(Voice.objects.all(), request.workspace, pk=voice_id)
    name = request.POST.get("name", "")
    return _voices_action(request, lambda: voice_rename(voice=voice, name=name, acting_user=request.user), "renamed")


@workspace_required(Perm.USE)
@require_POST
def voice_delete_view(request: WorkspaceRequest, voice_id: int) -> HttpResponse:
    voice = get_for_workspace_or_404(Voice.objects.select_related("model__provider"), request.workspace, pk=voice_id)
    return _voices_action(request, lambda: voice_delete(voice=voice, acting_user=request.user), "deleted")


def _voices_action(request: WorkspaceRequest, work: Callable[[], object], done: str) -> HttpResponse:
    """Do `work` on a voice and go back to the voices page, saying it is `done` or why not."""
    try:
        work()
    except MediaError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Voice {done}.")
    return redirect("media:voices")


@workspace_required(Perm.USE)
@require_GET
def transcript_download(request: WorkspaceRequest, job_id: int, fmt: str) -> HttpResponse:
    """A finished transcription's transcript as text, SRT, VTT or JSON (with segments)."""
    from apps.generation.providers.audio import TRANSCRIPT_CONTENT_TYPES, transcript_as
    from apps.media.kinds import transcript_from_json

    if fmt not in TRANSCRIPT_DOWNLOADS:
        raise Http404("No such format.")
    job = get_for_workspace_or_404(
        GenerationJob.objects.filter(kind=JobKind.TRANSCRIPTION), request.workspace, pk=job_id
    )
    output = MediaFile.objects.filter(job=job, workspace_id=job.workspace_id, kind=MediaKind.TRANSCRIPT).first()
    if output is None or not output.metadata.get("transcript"):
        raise Http404("This transcript expired." if job.results_expired_at else "This job has no transcript.")
    ext, response_format = TRANSCRIPT_DOWNLOADS[fmt]
    text = transcript_as(transcript_from_json(output.metadata["transcript"]), response_format)
    response = HttpResponse(text.encode(), content_type=TRANSCRIPT_CONTENT_TYPES[response_format])
    response["Content-Disposition"] = f'attachment; filename="transcript-{job.pk}.{ext}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


@workspace_required(Perm.USE)
@require_GET
def job_status(request: WorkspaceRequest, job_id: int) -> JsonResponse:
    """The polling fallback of the progress socket."""
    return JsonResponse(job_json(request, _job(request, job_id)))


@workspace_required(Perm.USE)
@require_POST
def job_cancel_view(request: WorkspaceRequest, job_id: int) -> HttpResponse:
    job = _job(request, job_id)
    try:
        job_cancel(job=job, acting_user=request.user)
    except MediaError as exc:
        if request.headers.get("Accept") == "application/json":
            return JsonResponse({"error": exc.message}, status=exc.status_code)
        messages.error(request, exc.message)
    else:
        messages.success(request, "Job cancelled; its credits were released.")
    if request.headers.get("Accept") == "application/json":
        return JsonResponse(job_json(request, job))
    return redirect(f"{reverse(KIND_PAGES.get(job.kind, 'media:images'))}?job={job.pk}")


@workspace_required(Perm.USE)
@require_GET
def gallery(request: WorkspaceRequest) -> HttpResponse:
    form = GalleryFilterForm(request.GET or None, models=gallery_models(workspace=request.workspace))
    filters = GalleryFilters()
    status = 200
    if form.is_bound:
        if form.is_valid():
            data = form.cleaned_data
            filters = GalleryFilters(model=data.get("model") or "", start=data.get("start"), end=data.get("end"))
        else:
            status = 400
    page = Paginator(gallery_images(workspace=request.workspace, filters=filters), GALLERY_PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    items = [media_file_json(image, user=request.user) for image in page.object_list]
    return render(request, "media/gallery.html", {"form": form, "page_obj": page, "items": items}, status=status)


@workspace_required(Perm.USE)
@require_POST
def file_delete(request: WorkspaceRequest, file_id: int) -> HttpResponse:
    media_file = get_for_workspace_or_404(MediaFile.objects.originals(), request.workspace, pk=file_id)
    media_file_delete(media_file=media_file, acting_user=request.user)
    messages.success(request, "Image deleted.")
    return redirect("media:gallery")


@require_GET
def download(request: HttpRequest, token: str) -> FileResponse:
    """Serve a private file from local storage for a valid, unexpired token. A token minted
    for a signed-in person also needs the requester to be a member of the file's workspace."""
    payload = download_token_read(token)
    if payload is None:
        raise Http404("This link is invalid or has expired.")
    media_file = MediaFile.objects.filter(pk=payload["f"], workspace_id=payload["w"]).first()
    if media_file is None:
        raise Http404("No such file.")
    if payload.get("u"):
        user = request.user
        if (
            not user.is_authenticated
            or not Membership.objects.filter(
                workspace_id=media_file.workspace_id, user=user, workspace__deleted_at__isnull=True
            ).exists()
        ):
            raise Http404("No such file.")
    try:
        handle = media_file.file.open("rb")
    except FileNotFoundError as exc:
        raise Http404("The file is gone.") from exc
    filename = media_file.file.name.rsplit("/", 1)[-1]
    response = FileResponse(
        handle, content_type=media_file.content_type, as_attachment=bool(request.GET.get("download")), filename=filename
    )
    response["Cache-Control"] = "private, max-age=300"
    response["X-Content-Type-Options"] = "nosniff"
    return response
