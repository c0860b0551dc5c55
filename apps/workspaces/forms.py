from __future__ import annotations

from typing import Any

from django import forms

from apps.core.forms import CleanTextMixin
from apps.workspaces.roles import ROLE_RANK, Role


class WorkspaceForm(CleanTextMixin, forms.Form):
    name = forms.CharField(max_length=100, strip=True)


class ResponseCacheForm(forms.Form):
    response_cache = forms.BooleanField(
        required=False,
        label="Serve repeated requests from the response cache",
        help_text="Identical chat requests at temperature 0 (no tools) are answered from the cache "
        "instead of the provider, at the cache rate set by the operator.",
    )


class DeleteWorkspaceForm(CleanTextMixin, forms.Form):
    confirm_name = forms.CharField(max_length=100, label="Type the workspace name to confirm")


class InviteForm(CleanTextMixin, forms.Form):
    email = forms.EmailField(max_length=254)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MEMBER)

    def __init__(self, *args: Any, acting_role: str = Role.OWNER, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Offer only the roles this user may grant; the service refuses the others with a reason.
        rank = ROLE_RANK[acting_role]
        self.fields["role"].widget.choices = [(v, label) for v, label in Role.choices if ROLE_RANK[v] <= rank]


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)
