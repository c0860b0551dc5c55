"""`/api/…`: the platform API (`/api/v1/…`), its OpenAPI schema and interactive docs."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from apps.api import documents, jobs, platform

app_name = "api"

urlpatterns = [
    path("v1/workspace/", platform.WorkspaceView.as_view(), name="workspace"),
    path("v1/credits/", platform.CreditsView.as_view(), name="credits"),
    path("v1/credits/usage/", platform.UsageView.as_view(), name="usage"),
    path("v1/conversations/", platform.ConversationListView.as_view(), name="conversations"),
    path("v1/conversations/<int:conversation_id>/", platform.ConversationDetailView.as_view(), name="conversation"),
    path(
        "v1/conversations/<int:conversation_id>/export/",
        platform.ConversationExportView.as_view(),
        name="conversation_export",
    ),
    path("v1/jobs/", jobs.JobListView.as_view(), name="jobs"),
    path("v1/jobs/<int:job_id>/", jobs.JobDetailView.as_view(), name="job"),
    path("v1/jobs/<int:job_id>/cancel/", jobs.JobCancelView.as_view(), name="job_cancel"),
    path("v1/api-keys/", platform.ApiKeyListView.as_view(), name="api_keys"),
    path("v1/api-keys/<int:key_id>/revoke/", platform.ApiKeyRevokeView.as_view(), name="api_key_revoke"),
    path("v1/documents/", documents.DocumentListView.as_view(), name="documents"),
    path("v1/documents/<int:document_id>/", documents.DocumentDetailView.as_view(), name="document"),
    path(
        "v1/documents/<int:document_id>/versions/", documents.DocumentVersionsView.as_view(), name="document_versions"
    ),
    path("v1/documents/<int:document_id>/restore/", documents.DocumentRestoreView.as_view(), name="document_restore"),
    path("v1/documents/<int:document_id>/export/", documents.DocumentExportView.as_view(), name="document_export"),
    path("v1/presets/", documents.PresetListView.as_view(), name="presets"),
    path("v1/presets/<int:preset_id>/", documents.PresetDetailView.as_view(), name="preset"),
    path("v1/presets/<int:preset_id>/render/", documents.PresetRenderView.as_view(), name="preset_render"),
    path("schema/", SpectacularAPIView.as_view(urlconf="apps.api.schema_urls"), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
]
