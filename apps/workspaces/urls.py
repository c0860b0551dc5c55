from __future__ import annotations

from django.urls import path

from apps.workspaces import views

app_name = "workspaces"

urlpatterns = [
    path("", views.workspace_list, name="list"),
    path("new/", views.workspace_create, name="create"),
    path("switch/", views.workspace_switch, name="switch"),
    path("current/settings/", views.workspace_settings, name="settings"),
    path("current/response-cache/", views.workspace_response_cache, name="response_cache"),
    path("current/delete/", views.workspace_delete, name="delete"),
    path("current/leave/", views.workspace_leave, name="leave"),
    path("current/members/", views.members, name="members"),
    path("current/members/invite/", views.member_invite, name="invite"),
    path("current/members/<int:membership_id>/role/", views.member_role, name="member_role"),
    path("current/members/<int:membership_id>/remove/", views.member_remove, name="member_remove"),
    path("current/invitations/<int:invitation_id>/resend/", views.invitation_resend, name="invitation_resend"),
    path("current/invitations/<int:invitation_id>/revoke/", views.invitation_revoke, name="invitation_revoke"),
    path("invitations/<str:token>/", views.invitation_accept, name="invitation_accept"),
]
