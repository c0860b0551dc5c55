from __future__ import annotations

from django.urls import path

from apps.presets import views

app_name = "presets"

urlpatterns = [
    path("", views.preset_list, name="list"),
    path("new/", views.preset_edit, name="new"),
    path("picker/", views.preset_picker, name="picker"),
    path("<int:preset_id>/fill/", views.preset_fill, name="fill"),
    path("<int:preset_id>/render/", views.preset_render_view, name="render"),
    path("<int:preset_id>/", views.preset_use_page, name="use"),
    path("<int:preset_id>/edit/", views.preset_edit, name="edit"),
    path("<int:preset_id>/favourite/", views.preset_favourite_view, name="favourite"),
    path("<int:preset_id>/delete/", views.preset_delete_view, name="delete"),
]
