from __future__ import annotations

from django import forms

from apps.workspaces.roles import Role


class WorkspaceForm(forms.Form):
    name = forms.CharField(max_length=100, strip=True)


class DeleteWorkspaceForm(forms.Form):
    confirm_name = forms.CharField(max_length=100, label="Type the workspace name to confirm")


class InviteForm(forms.Form):
    email = forms.EmailField(max_length=254)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MEMBER)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)
