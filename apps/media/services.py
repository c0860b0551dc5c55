"""Every write to media jobs and files.

    job_create: validate → authorise model → quote → [one transaction: job row + credits hold]
                → on commit: enqueue `run_job`
    job_run (the task): claim (conditional UPDATE) → kind handler, no transaction open, with
                heartbeats → [one transaction: succeeded + settle] | [failed + release]
    job_cancel / job_sweep_stale: [one transaction: status change + release]

Each hold ends exactly once: every ending is a conditional UPDATE of the job's status (only
one caller can move it out of queued/running) in the same transaction as the reservation's
own guarded settle/release (which is a no-op if the hold already ended). A worker fences its
writes with the `attempts` value its claim set, so a worker that was presumed dead and comes
back cannot finish (or charge) a job that was handed to another.

Crash windows: the job row and its hold are created in one transaction, so there is never one
without the other. A worker that dies mid-job leaves it `running` with an old heartbeat; the
sweeper re-queues it (up to `max_attempts`), then fails it and releases the hold. If even the
sweeper stops, the credits sweeper ends holds older than RESERVATION_MAX_AGE_MINUTES, and a
job claimed after that is failed instead of run (it could no longer be charged).

Every transaction here is durable: a job's transaction is never part of a caller's (its task
is enqueued when it commits, and no provider call may run with one open).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from apps.audit.services import audit_record
from apps.core.events import send_on_commit
from apps.credits.models import Reservation
from apps.credits.services import credits_release, credits_reserve, credits_settle
from apps.generation.models import AIModel, Capability, Generation, Unusable
from apps.generation.providers.base import ProviderError
from apps.generation.services import generation_usage_record
from apps.media.exceptions import MediaError
from apps.media.kinds import KINDS, RunContext
from apps.media.models import ACTIVE_STATUSES, GenerationJob, JobKind, JobStatus, MediaFile, Voice, job_group
from apps.media.selectors import workspace_storage_used
from apps.media.signals import job_completed
from apps.workspaces.selectors import workspace_entitlements, workspace_plan_code

if TYPE_CHECKING:
    from apps.accounts.models import User
    from apps.apikeys.models import ApiKey
    from apps.workspaces.entitlements import Entitlements
    from apps.workspaces.models import Workspace

logger = logging.getLogger(__name__)

# Defaults of the runtime settings (admin, Config > Media when the keys are added).
DEFAULTS = {
    "MEDIA_JOB_STALE_SECONDS": 120,
    "MEDIA_JOB_QUEUED_TIMEOUT_SECONDS": 600,
    "MEDIA_JOB_MAX_ATTEMPTS": 3,
}
MAX_KEY_LENGTH = 150
MB = 1024 * 1024


def pricing_url() -> str:
    from django.urls import reverse

    return reverse("billing:pricing")


class JobAbandoned(Exception):
    """The job was cancelled or handed to another worker while this one ran it."""


class RetryLater(Exception):
    """A transient provider failure: the job was re-queued; the task should retry."""


def media_setting(name: str) -> int:
    from constance import config

    return int(getattr(config, name, DEFAULTS[name]))


# ---------------------------------------------------------------------------- notifications


def job_event(job: GenerationJob) -> dict[str, Any]:
    return {
        "type": "job.progress",
        "job": job.pk,
        "kind": job.kind,
        "status": job.status,
        "progress": job.progress,
        "error": job.error,
    }


def _notify(job_id: int) -> None:
    """Send the job's state to its group once the current transaction commits (a few events
    per job: fan-out, which is what the channel layer is for). Never fails the caller."""

    def send() -> None:
        from asgiref.sync import async_to_sync
        from channels.layers import get_channel_layer

        job = GenerationJob.objects.filter(pk=job_id).first()
        layer = get_channel_layer()
        if job is None or layer is None:
            return
        try:
            async_to_sync(layer.group_send)(job_group(job_id), job_event(job))
        except Exception:
            logger.warning("could not send progress of job %s", job_id, exc_info=True)

    transaction.on_commit(send, robust=True)


def _enqueue(job_id: int) -> None:
    from apps.media.tasks import run_job

    # robust: a broker that is down must not undo the committed job; it stays queued and the
    # sweeper enqueues it again.
    transaction.on_commit(lambda: run_job.delay(job_id), robust=True)


# ---------------------------------------------------------------------------- create


def _authorise(model: AIModel, kind: str, plan_code: str | None) -> None:
    """The one capability rule (`AIModel.unusable_reason`) in the media API's words: a model that
    is off or does not do this kind of job is a bad request (400, named first), a provider that
    is off or a plan without the model is a refusal (403)."""
    reason = model.unusable_reason(USAGE_CAPABILITY[kind], plan_code=plan_code)
    if reason is None:
        return
    if reason is Unusable.UNSUPPORTED or not model.enabled:
        raise MediaError(
            f"The model `{model.model_id}` does not support {KINDS[kind].capability}.",
            param="model",
            code="model_not_supported",
        )
    if reason is Unusable.DISABLED:
        raise MediaError(f"The provider of `{model.model_id}` is not available.", status_code=403, param="model")
    raise MediaError(f"Your plan does not include `{model.model_id}`.", status_code=403, param="model")


def job_validate(
    *,
    kind: str,
    model: AIModel,
    parameters: dict[str, Any],
    plan_code: str | None = None,
    workspace_id: int | None = None,
) -> dict[str, Any]:
    """The normalised parameters, or MediaError (400/403) saying what is wrong. Without
    `plan_code`, the model is checked against the plan of the workspace `workspace_id`."""
    if kind not in KINDS:
        raise MediaError(f"Unknown or unsupported job kind: {kind}.", param="kind")
    if not isinstance(parameters, dict):
        raise MediaError("parameters must be an object.", param="parameters")
    if plan_code is None and workspace_id is not None:
        plan_code = workspace_plan_code(workspace_id)
    _authorise(model, kind, plan_code)
    return KINDS[kind].validate(model, parameters, workspace_id=workspace_id)


def job_create(
    *,
    workspace: Workspace,
    kind: str,
    model: AIModel,
    parameters: dict[str, Any],
    idempotency_key: str,
    user: User | None = None,
    api_key: ApiKey | None = None,
    reserve: Callable[..., Reservation] | None = None,
    plan_code: str | None = None,
) -> GenerationJob:
    """Validate, quote, and in one short transaction create the job and hold its credits; the
    task is enqueued when that commits. `reserve` replaces `credits_reserve` (the API passes one
    that also checks the key's spending cap). A replayed `idempotency_key` returns the job it
    created and holds nothing more. The workspace's plan must include the kind (voice cloning)
    and the model, and its storage must not be full. Raises MediaError, InsufficientCredits,
    SpendingCapReached, RateNotFound, or what `reserve` raises."""
    key = str(idempotency_key)
    if not key or len(key) > MAX_KEY_LENGTH:
        raise MediaError(f"An idempotency key must have 1 to {MAX_KEY_LENGTH} characters.")
    existing = GenerationJob.objects.filter(idempotency_key=key).first()
    if existing is not None:
        if existing.workspace_id != workspace.pk:
            raise MediaError("This idempotency key was already used.", status_code=409)
        return existing
    _check_plan(workspace, kind)
    params = job_validate(kind=kind, model=model, parameters=parameters, plan_code=plan_code, workspace_id=workspace.pk)
    quote = KINDS[kind].quote(model, params)
    try:
        with transaction.atomic(durable=True):
            job = GenerationJob.objects.create(
                workspace=workspace,
                user=user if user is not None and user.pk else None,
                api_key=api_key,
                kind=kind,
                model=model,
                model_label=model.model_id,
                parameters=params,
                credits_reserved_units=quote.units,
                idempotency_key=key,
                heartbeat_at=timezone.now(),  # "queued since", for the sweeper
            )
            reserve_kwargs: dict[str, Any] = {
                "workspace": workspace,
                "units": quote.units,
                "idempotency_key": f"media-job:{key}",
                "user": job.user,
                "service": KINDS[kind].service,
                "model": model.model_id,
                "rate_card": quote.rate_card,
            }
            if reserve is None:
                reservation = credits_reserve(related=job, **reserve_kwargs)
            else:
                reservation = reserve(**reserve_kwargs)
            job.reservation = reservation
            job.save(update_fields=["reservation"])
            KINDS[kind].attach(job)  # e.g. the uploaded audio of a transcription
            _enqueue(job.pk)
    except IntegrityError:
        # A twin request with the same key committed first.
        existing = GenerationJob.objects.filter(idempotency_key=key, workspace=workspace).first()
        if existing is None:
            raise
        return existing
    return job


# ---------------------------------------------------------------------------- plan limits


def _check_plan(workspace: Workspace, kind: str) -> Entitlements:
    """Refuse what the workspace's plan does not allow before anything is stored or held:
    voice cloning (403) and new files once its storage is full (403). Every kind stores files:
    its results, or the uploads it keeps (voice samples)."""
    entitlements = workspace_entitlements(workspace)
    if kind == JobKind.VOICE_CLONE:
        refusal = _voice_cloning_refusal(entitlements)
        if refusal is not None:
            raise refusal
    limit = entitlements.storage_bytes
    if limit is not None:
        used = workspace_storage_used(workspace=workspace)
        if used >= limit:
            raise MediaError(
                f"Your workspace's storage is full: {used / MB:.1f} MB used of the {limit / MB:g} MB included in "
                f"the {entitlements.plan_name} plan. Delete files you no longer need, or upgrade your plan, "
                "to create more.",
                status_code=403,
                code="storage_full",
                upgrade_url=pricing_url(),
            )
    return entitlements


def _voice_cloning_refusal(entitlements: Entitlements) -> MediaError | None:
    if entitlements.voice_cloning:
        return None
    return MediaError(
        f"Voice cloning is not included in your {entitlements.plan_name} plan: the Professional plan and "
        "higher plans include it.",
        status_code=403,
        code="plan_upgrade_required",
        upgrade_url=pricing_url(),
    )


def job_create_with_uploads(
    *,
    workspace: Workspace,
    kind: str,
    files: Sequence[Any],
    parameters: dict[str, Any],
    **options: Any,
) -> GenerationJob:
    """Store the uploaded audio `files` (checked by content, each within the plan's upload
    limit), then `job_create` the job that uses them: their ids go in the kind's upload
    parameter (`upload` for a transcription, `samples` for a voice clone). Uploads no job took
    (refused, or a replayed key that returned the earlier job) are deleted again. `options`
    are `job_create`'s. Raises what `job_create` raises, and MediaError for the files (413
    too large, 400 not audio)."""
    handler = KINDS.get(kind)
    if handler is None or not handler.upload_parameter:
        raise MediaError(f"A {kind} job takes no uploaded files.", param="file")
    if not files:
        raise MediaError("Upload an audio file.", param="file")
    if len(files) > handler.max_uploads:
        raise MediaError(f"Upload at most {handler.max_uploads} audio file(s).", param="file")
    entitlements = _check_plan(workspace, kind)  # refused before any byte is stored
    uploads = _uploads_create(workspace=workspace, files=files, entitlements=entitlements)
    ids = [upload.pk for upload in uploads]
    parameters = {**parameters, handler.upload_parameter: ids[0] if handler.max_uploads == 1 else ids}
    try:
        return job_create(workspace=workspace, kind=kind, parameters=parameters, **options)
    finally:
        media_uploads_discard(uploads)


def _uploads_create(*, workspace: Workspace, files: Sequence[Any], entitlements: Entitlements) -> list[MediaFile]:
    """All the files stored, or none (MediaError): the plan's upload limit, else the site's."""
    from apps.media.storage import MAX_AUDIO_UPLOAD_BYTES, audio_upload_create

    limit, plan_name = MAX_AUDIO_UPLOAD_BYTES, ""
    if entitlements.upload_max_bytes is not None:
        limit, plan_name = entitlements.upload_max_bytes, entitlements.plan_name
    uploads: list[MediaFile] = []
    try:
        for file in files:
            uploads.append(
                audio_upload_create(
                    workspace_id=workspace.pk,
                    file=file,
                    filename=getattr(file, "name", "") or "audio",
                    max_bytes=limit,
                    plan_name=plan_name,
                )
            )
    except BaseException:
        media_uploads_discard(uploads)
        raise
    return uploads


def media_uploads_discard(uploads: Sequence[MediaFile]) -> None:
    """Delete those of `uploads` that no job took (their rows, then their bytes)."""
    from apps.media.storage import media_file_delete_stored

    unattached = list(MediaFile.objects.filter(pk__in=[u.pk for u in uploads], job__isnull=True))
    MediaFile.objects.filter(pk__in=[u.pk for u in unattached]).delete()
    for upload in unattached:
        media_file_delete_stored(upload)


# ---------------------------------------------------------------------------- endings


USAGE_CAPABILITY: dict[str, Capability] = {
    JobKind.IMAGE: Capability.IMAGES,
    JobKind.SPEECH: Capability.SPEECH,
    JobKind.TRANSCRIPTION: Capability.TRANSCRIPTION,
    JobKind.VOICE_CLONE: Capability.VOICE_CLONING,
}
USAGE_OUTCOME: dict[str, str] = {
    JobStatus.SUCCEEDED: Generation.Outcome.OK,
    JobStatus.CANCELLED: Generation.Outcome.STOPPED,
}


def _log_usage(job: GenerationJob, *, status: str, charged_units: int, finished_at: datetime, error: str = "") -> None:
    """The finished job on the usage log (`Generation`), in the transaction that ends it, so
    reports read text and media usage in one place."""
    started = job.started_at or job.created_at
    generation_usage_record(
        workspace_id=job.workspace_id,
        capability=USAGE_CAPABILITY[job.kind],
        model=job.model,
        model_label=job.model_label,
        outcome=USAGE_OUTCOME.get(status, Generation.Outcome.ERROR),
        reference=f"media_job:{job.pk}",
        credits_charged_units=charged_units,
        reservation_id=job.reservation_id,
        user_id=job.user_id,
        api_key_id=job.api_key_id,
        total_ms=max(int((finished_at - started).total_seconds() * 1000), 0),
        error=error,
    )


def _end(
    job: GenerationJob,
    *,
    status: str,
    error: str = "",
    token: int | None = None,
    statuses: tuple[str, ...] = ACTIVE_STATUSES,
) -> bool:
    """Move an active job to a terminal status and release its hold, in one transaction.
    False (and nothing changed) if it was not active any more (or, with `token`, was claimed
    again since)."""
    now = timezone.now()
    with transaction.atomic(durable=True):
        jobs = GenerationJob.objects.filter(pk=job.pk, status__in=statuses)
        if token is not None:
            jobs = jobs.filter(attempts=token)
        if not jobs.update(status=status, error=error[:2000], finished_at=now, heartbeat_at=now):
            return False
        if job.reservation_id is not None:
            reservation = Reservation.objects.get(pk=job.reservation_id)
            credits_release(reservation=reservation, reason=f"media job {status}")
        _log_usage(job, status=status, charged_units=0, finished_at=now, error=error)
    job.status, job.error, job.finished_at = status, error, now
    _notify(job.pk)
    return True


def job_cancel(*, job: GenerationJob, acting_user: User | None) -> GenerationJob:
    """Cancel a queued or running job and release its hold. A running task notices at its next
    checkpoint and stops without charging. A finished job is refused (409)."""
    if not _end(job, status=JobStatus.CANCELLED, error="Cancelled."):
        job.refresh_from_db()
        raise MediaError(
            f"This job has already {job.get_status_display().lower()}; only a queued or running job can be cancelled.",
            status_code=409,
            code="job_finished",
        )
    audit_record(
        actor=acting_user,
        action="media.job_cancel",
        target=job,
        workspace=job.workspace,
        metadata={"kind": job.kind, "model": job.model_label},
    )
    return job


def job_sweep_stale(
    *, older_than: timedelta | None = None, queued_older_than: timedelta | None = None, max_attempts: int | None = None
) -> dict[str, int]:
    """Jobs whose worker died (running, heartbeat older than `older_than`) or that no worker
    took (queued longer than `queued_older_than`): re-queued while they have attempts left,
    else failed with their hold released. Each job in its own transaction."""
    older_than = older_than or timedelta(seconds=media_setting("MEDIA_JOB_STALE_SECONDS"))
    queued_older_than = queued_older_than or timedelta(seconds=media_setting("MEDIA_JOB_QUEUED_TIMEOUT_SECONDS"))
    max_attempts = max_attempts or media_setting("MEDIA_JOB_MAX_ATTEMPTS")
    now = timezone.now()
    counts = {"requeued": 0, "failed": 0}
    stale = GenerationJob.objects.filter(
        Q(status=JobStatus.RUNNING, heartbeat_at__lt=now - older_than)
        | Q(status=JobStatus.QUEUED, heartbeat_at__lt=now - queued_older_than)
    ).order_by("pk")
    for job in list(stale.select_related("reservation")):
        if job.attempts >= max_attempts:
            message = "The job was interrupted too many times (worker lost); nothing was charged."
            if _end(job, status=JobStatus.FAILED, error=message, token=job.attempts, statuses=(job.status,)):
                counts["failed"] += 1
            continue
        with transaction.atomic(durable=True):
            # Only if nobody touched it since we read it (same status, attempts and heartbeat).
            moved = GenerationJob.objects.filter(
                pk=job.pk, status=job.status, attempts=job.attempts, heartbeat_at=job.heartbeat_at
            ).update(
                status=JobStatus.QUEUED,
                heartbeat_at=timezone.now(),
                # A delivery that never reached a worker counts as an attempt too.
                attempts=F("attempts") + (1 if job.status == JobStatus.QUEUED else 0),
            )
            if moved:
                counts["requeued"] += 1
                _notify(job.pk)
                _enqueue(job.pk)
    return counts


# ---------------------------------------------------------------------------- running


def _claim(job_id: int) -> GenerationJob | None:
    """Take the job for this worker: queued → running, or running with a stale heartbeat (its
    worker died). One conditional UPDATE, so two deliveries never both run it."""
    now = timezone.now()
    stale_before = now - timedelta(seconds=media_setting("MEDIA_JOB_STALE_SECONDS"))
    claimed = (
        GenerationJob.objects.filter(pk=job_id)
        .filter(Q(status=JobStatus.QUEUED) | Q(status=JobStatus.RUNNING, heartbeat_at__lt=stale_before))
        .update(
            status=JobStatus.RUNNING,
            attempts=F("attempts") + 1,
            heartbeat_at=now,
            started_at=Coalesce("started_at", now),
            progress=0,
        )
    )
    if not claimed:
        return None
    return GenerationJob.objects.select_related("model__provider", "reservation__rate_card", "workspace").get(pk=job_id)


def _progress(job: GenerationJob, percent: int) -> None:
    """Heartbeat + progress; the checkpoint where a cancelled or taken-over job stops."""
    updated = GenerationJob.objects.filter(pk=job.pk, status=JobStatus.RUNNING, attempts=job.attempts).update(
        progress=max(0, min(percent, 100)), heartbeat_at=timezone.now()
    )
    if not updated:
        raise JobAbandoned
    job.progress = percent
    _notify(job.pk)


def _discard(files: list[MediaFile]) -> None:
    from apps.media.storage import media_file_delete_stored

    for original in files:
        for row in [*original.derivatives.all(), original]:
            media_file_delete_stored(row)
            row.delete()


def job_run(*, job_id: int, final_attempt: bool = True) -> GenerationJob | None:
    """Run a job once (the Celery task's body). Safe to call any number of times: a job that is
    finished, or running elsewhere with a live heartbeat, is left alone. Raises RetryLater after
    re-queueing the job on a transient provider error, unless `final_attempt`."""
    job = _claim(job_id)
    if job is None:
        return None
    token = job.attempts
    if job.attempts > media_setting("MEDIA_JOB_MAX_ATTEMPTS"):
        _end(job, status=JobStatus.FAILED, error="The job failed too many times; nothing was charged.", token=token)
        return job
    if job.reservation is None or job.reservation.status != Reservation.Status.HELD:
        # The credits sweeper ended the hold (the job waited too long): it can no longer be charged.
        _end(
            job, status=JobStatus.FAILED, error="The job waited too long and expired; nothing was charged.", token=token
        )
        return job
    final_attempt = final_attempt or job.attempts >= media_setting("MEDIA_JOB_MAX_ATTEMPTS")
    _notify(job.pk)
    context = RunContext(progress=lambda percent: _progress(job, percent))
    try:
        result = KINDS[job.kind].run(job, context)  # no transaction is open here
    except JobAbandoned:
        _discard(context.created)
        return job
    except ProviderError as exc:
        _discard(context.created)
        if exc.retryable and not final_attempt:
            requeued = GenerationJob.objects.filter(pk=job.pk, status=JobStatus.RUNNING, attempts=token).update(
                status=JobStatus.QUEUED, heartbeat_at=timezone.now(), progress=0
            )
            if requeued:
                _notify(job.pk)
                raise RetryLater(exc.message) from exc
            return job
        _end(job, status=JobStatus.FAILED, error=f"The provider failed: {exc.message}", token=token)
        return job
    except MediaError as exc:
        _discard(context.created)
        _end(job, status=JobStatus.FAILED, error=exc.message, token=token)
        return job
    except Exception:
        # A bug or a time limit: end the hold now rather than leave it to the sweepers.
        logger.exception("media job %s crashed", job.pk)
        _discard(context.created)
        _end(job, status=JobStatus.FAILED, error="The job failed unexpectedly; nothing was charged.", token=token)
        raise
    if not _succeed(job, result.charge_units, result.delivered, token):
        _discard(context.created)
    return job


def _succeed(job: GenerationJob, charge_units: int, delivered: dict[str, Any], token: int) -> bool:
    now = timezone.now()
    with transaction.atomic(durable=True):
        if not GenerationJob.objects.filter(pk=job.pk, status=JobStatus.RUNNING, attempts=token).update(
            status=JobStatus.SUCCEEDED, progress=100, finished_at=now, heartbeat_at=now, error=""
        ):
            return False  # cancelled (hold already released) or taken over
        charged = 0
        if job.reservation is not None:
            reservation = credits_settle(
                reservation=job.reservation,
                actual_units=charge_units,
                usage=delivered,
                reason=f"media job {job.pk}",
            )
            charged = reservation.charged_units if reservation.status == Reservation.Status.SETTLED else 0
        GenerationJob.objects.filter(pk=job.pk).update(credits_charged_units=charged)
        job.credits_charged_units = charged
        _log_usage(job, status=JobStatus.SUCCEEDED, charged_units=charged, finished_at=now)
        send_on_commit(job_completed, sender=GenerationJob, job=job)
    job.status, job.progress, job.finished_at, job.credits_charged_units = JobStatus.SUCCEEDED, 100, now, charged
    _notify(job.pk)
    return True


# ---------------------------------------------------------------------------- files


def media_file_delete(*, media_file: MediaFile, acting_user: User | None) -> None:
    """Delete a file, its previews and their stored bytes (audited)."""
    from apps.media.storage import media_file_delete_stored

    rows = [*media_file.derivatives.all(), media_file]
    with transaction.atomic(durable=True):
        audit_record(
            actor=acting_user,
            action="media.file_delete",
            target=media_file,
            workspace=media_file.workspace,
            metadata={"kind": media_file.kind, "job": media_file.job_id, "name": media_file.file.name},
        )
        for row in rows:
            row.delete()
    # Bytes go after the rows are gone for good: a failed delete leaves an orphan file, never a
    # row pointing at nothing.
    for row in rows:
        media_file_delete_stored(row)


# ---------------------------------------------------------------------------- voices


def voice_cloning_allowed(workspace: Workspace) -> bool:
    """Whether `workspace`'s plan includes voice cloning."""
    return workspace_entitlements(workspace).voice_cloning


def voice_cloning_refusal(workspace: Workspace) -> MediaError | None:
    """Why `workspace` may not clone voices (its plan; 403), or None when it may."""
    return _voice_cloning_refusal(workspace_entitlements(workspace))


@transaction.atomic(durable=True)
def voice_rename(*, voice: Voice, name: str, acting_user: User | None) -> Voice:
    """Rename a cloned voice locally (audited); the provider keeps the name it was cloned with."""
    from apps.generation.providers.audio import MAX_VOICE_NAME

    name = (name or "").strip()
    if not name or len(name) > MAX_VOICE_NAME:
        raise MediaError(f"A voice name has 1 to {MAX_VOICE_NAME} characters.", param="name")
    old = voice.name
    voice.name = name
    voice.save(update_fields=["name"])
    audit_record(
        actor=acting_user,
        action="media.voice_rename",
        target=voice,
        workspace=voice.workspace,
        metadata={"from": old, "to": name},
    )
    return voice


def voice_delete(*, voice: Voice, acting_user: User | None) -> None:
    """Delete a cloned voice at its provider, then here (audited). A provider error leaves the
    voice in place (MediaError 502) so the delete can be tried again."""
    from apps.generation.providers.audio import delete_voice

    if voice.model is not None:
        try:
            delete_voice(voice.model.provider.config(), voice.provider_voice_id)
        except ProviderError as exc:
            raise MediaError(f"The provider could not delete the voice: {exc.message}", status_code=502) from exc
    else:
        logger.warning("voice %s has no model: not deleted at the provider", voice.pk)
    with transaction.atomic(durable=True):
        audit_record(
            actor=acting_user,
            action="media.voice_delete",
            target=voice,
            workspace=voice.workspace,
            metadata={"name": voice.name, "provider_voice_id": voice.provider_voice_id},
        )
        voice.delete()


def media_cleanup(*, orphan_grace: timedelta = timedelta(hours=1), batch: int = 1000) -> dict[str, int]:
    """The hourly cleanup (`cleanup_media`); each step deletes at most `batch` files a run, so
    a backlog is worked off over several runs. Safe to run again: what is gone stays gone.

    - `expired`: files whose `expires_at` passed;
    - `retention`: files (results and uploads) older than the workspace plan's
      `result_retention_days` — their jobs are marked `results_expired_at`;
    - `orphaned`: uploads no job took within `orphan_grace`, and files whose job was deleted;
    - `stored_orphans`: stored objects under the media prefix, older than `orphan_grace`, that
      no row names (a crash between writing the bytes and the row, or a failed delete)."""
    now = timezone.now()
    originals = MediaFile.objects.filter(parent__isnull=True)
    return {
        "expired": _files_purge(originals.filter(expires_at__lt=now)[:batch]),
        "retention": _retention_purge(now, batch),
        "orphaned": _files_purge(originals.filter(job__isnull=True, created_at__lt=now - orphan_grace)[:batch]),
        "stored_orphans": media_storage_sweep(older_than=orphan_grace, limit=batch),
    }


def _files_purge(files: Any) -> int:
    """Delete these original files and their previews: the rows first, with their jobs marked
    as expired, then the bytes. A delete that fails leaves bytes without a row (never a row
    without its bytes), which `media_storage_sweep` removes later."""
    from apps.media.storage import media_file_delete_stored

    originals = list(files.prefetch_related("derivatives"))
    if not originals:
        return 0
    rows = [derivative for original in originals for derivative in original.derivatives.all()] + originals
    with transaction.atomic(durable=True):
        MediaFile.objects.filter(pk__in=[row.pk for row in rows]).delete()
        GenerationJob.objects.filter(
            pk__in={row.job_id for row in originals if row.job_id}, results_expired_at__isnull=True
        ).update(results_expired_at=timezone.now())
    for row in rows:
        media_file_delete_stored(row)
    return len(originals)


def _retention_purge(now: Any, batch: int) -> int:
    """Files older than their workspace plan's result retention. One plan look-up per
    workspace that has files; jobs still queued or running keep theirs."""
    purged = 0
    originals = MediaFile.objects.filter(parent__isnull=True)
    workspace_ids = list(originals.order_by().values_list("workspace_id", flat=True).distinct())
    for workspace_id in sorted(workspace_ids):
        days = workspace_entitlements(workspace_id).result_retention_days
        if days is None:
            continue
        old = originals.filter(workspace_id=workspace_id, created_at__lt=now - timedelta(days=days)).exclude(
            job__status__in=ACTIVE_STATUSES
        )
        purged += _files_purge(old.order_by("created_at", "id")[: batch - purged])
        if purged >= batch:
            break
    return purged


def media_storage_sweep(*, older_than: timedelta = timedelta(hours=1), limit: int = 1000) -> int:
    """Delete stored files under the media prefix that no MediaFile row names and that were
    written more than `older_than` ago (a file is written before its row: the grace period
    keeps one whose row is about to be saved). At most `limit` deletions a run."""
    from apps.media.storage import stored_media_files

    storage = MediaFile._meta.get_field("file").storage
    deleted = 0
    names = stored_media_files(modified_before=timezone.now() - older_than, storage=storage)
    while deleted < limit:
        chunk = list(itertools.islice(names, 500))
        if not chunk:
            break
        known = set(MediaFile.objects.filter(file__in=chunk).values_list("file", flat=True))
        for name in chunk:
            if name not in known and deleted < limit:
                with contextlib.suppress(FileNotFoundError):
                    storage.delete(name)
                deleted += 1
    return deleted
