from __future__ import annotations

from django.urls import path

from apps.documents import views

app_name = "documents"

urlpatterns = [
    path("", views.document_index, name="list"),
    path("new/", views.document_new, name="new"),
    path("trash/", views.document_trash_list, name="trash"),
    path("shared/<str:token>/", views.document_shared, name="shared"),
    path("folders/", views.folder_new, name="folder_new"),
    path("folders/<int:folder_id>/rename/", views.folder_rename_view, name="folder_rename"),
    path("folders/<int:folder_id>/delete/", views.folder_delete_view, name="folder_delete"),
    path("<int:document_id>/", views.document_edit, name="edit"),
    path("<int:document_id>/preview/", views.document_preview, name="preview"),
    path("<int:document_id>/organise/", views.document_organise_view, name="organise"),
    path("<int:document_id>/duplicate/", views.document_duplicate_view, name="duplicate"),
    path("<int:document_id>/trash/", views.document_trash_view, name="trash_document"),
    path("<int:document_id>/restore/", views.document_untrash_view, name="untrash"),
    path("<int:document_id>/delete/", views.document_delete_view, name="delete"),
    path("<int:document_id>/share/", views.document_share_view, name="share"),
    path("<int:document_id>/versions/", views.document_history, name="history"),
    path("<int:document_id>/versions/<int:number>/", views.document_version_view, name="version"),
    path(
        "<int:document_id>/versions/<int:number>/restore/", views.document_version_restore_view, name="version_restore"
    ),
    path("<int:document_id>/diff/", views.document_diff, name="diff"),
]
