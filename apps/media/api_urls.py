"""`/api/v1/jobs/…`: included in aikeedo/urls.py before the `/api/` include."""

from __future__ import annotations

from django.urls import path

from apps.media import api

urlpatterns = [
    path("", api.JobListView.as_view(), name="api_jobs"),
    path("<int:job_id>/", api.JobDetailView.as_view(), name="api_job"),
    path("<int:job_id>/cancel/", api.JobCancelView.as_view(), name="api_job_cancel"),
]
