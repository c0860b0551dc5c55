"""`/studio/…`: the media pages."""

from __future__ import annotations

from django.urls import path

from apps.media import views

app_name = "media"

urlpatterns = [
    path("images/", views.image_studio, name="images"),
    path("images/from-preset/<int:preset_id>/", views.image_studio_from_preset, name="images_from_preset"),
    path("speech/", views.speech_studio, name="speech"),
    path("transcribe/", views.transcription_studio, name="transcribe"),
    path("transcribe/<int:job_id>/<str:fmt>/", views.transcript_download, name="transcript_download"),
    path("voices/", views.voices, name="voices"),
    path("voices/<int:voice_id>/rename/", views.voice_rename_view, name="voice_rename"),
    path("voices/<int:voice_id>/delete/", views.voice_delete_view, name="voice_delete"),
    path("gallery/", views.gallery, name="gallery"),
    path("jobs/<int:job_id>/", views.job_status, name="job_status"),
    path("jobs/<int:job_id>/cancel/", views.job_cancel_view, name="job_cancel"),
    path("files/<int:file_id>/delete/", views.file_delete, name="file_delete"),
    path("files/<str:token>/", views.download, name="download"),
]
