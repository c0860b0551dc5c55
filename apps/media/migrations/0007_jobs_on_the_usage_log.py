"""Finished media jobs from before media usage was logged on `Generation` get their row, so
the usage log holds every job (reports read one place)."""

from django.db import migrations

CAPABILITY = {"image": "images", "speech": "speech", "transcription": "transcription", "voice_clone": "voice_cloning"}
OUTCOME = {"succeeded": "ok", "cancelled": "stopped", "failed": "error"}


def log_finished_jobs(apps, schema_editor):
    GenerationJob = apps.get_model("media", "GenerationJob")
    Generation = apps.get_model("generation", "Generation")
    logged = set(Generation.objects.filter(reference__startswith="media_job:").values_list("reference", flat=True))
    rows = []
    for job in GenerationJob.objects.filter(status__in=OUTCOME).select_related("model__provider").iterator():
        reference = f"media_job:{job.pk}"
        if reference in logged:
            continue
        started = job.started_at or job.created_at
        finished = job.finished_at or started
        rows.append(
            Generation(
                workspace_id=job.workspace_id,
                capability=CAPABILITY[job.kind],
                reference=reference,
                user_id=job.user_id,
                api_key_id=job.api_key_id,
                model_id=job.model_id,
                model_label=job.model_label,
                provider_kind=job.model.provider.kind if job.model_id else "",
                upstream_model=job.model.upstream_model if job.model_id else "",
                credits_charged_units=job.credits_charged_units,
                reservation_id=job.reservation_id,
                total_ms=max(int((finished - started).total_seconds() * 1000), 0),
                outcome=OUTCOME[job.status],
                error=job.error[:2000],
                created_at=finished,
            )
        )
    Generation.objects.bulk_create(rows, batch_size=500)


def unlog_jobs(apps, schema_editor):
    Generation = apps.get_model("generation", "Generation")
    Generation.objects.filter(reference__startswith="media_job:").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("media", "0006_job_results_expired"),
        ("generation", "0010_usage_capability_reference"),
    ]

    operations = [migrations.RunPython(log_finished_jobs, unlog_jobs)]
