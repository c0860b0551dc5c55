"""Tenant isolation: nobody outside alpha can read or change alpha through any workspaces URL.

Every URL in apps/workspaces/urls.py has a case here; `test_every_workspace_url_has_a_case`
fails when a URL is added without one."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from apps.accounts.models import User
from apps.workspaces import services, urls
from apps.workspaces.models import Invitation, Membership, Workspace
from tests.conftest import Team

pytestmark = pytest.mark.django_db


@dataclass
class Scene:
    alpha: Team
    invitation: Invitation
    token: str
    intruder: User
    client: Client

    @property
    def intruder_is_owner(self) -> bool:
        return self.intruder.memberships.get(workspace_id=self.client.session["current_workspace_id"]).role == "owner"


def alpha_state(team: Team) -> dict[str, Any]:
    ws = team.workspace
    return {
        "workspace": Workspace.objects.filter(pk=ws.pk).values_list("name", "deleted_at").get(),
        "memberships": sorted(Membership.objects.filter(workspace=ws).values_list("pk", "user_id", "role")),
        "invitations": sorted(
            Invitation.objects.filter(workspace=ws).values_list(
                "pk", "email", "role", "token_hash", "expires_at", "accepted_at", "revoked_at"
            )
        ),
    }


def _shows_nothing_of_alpha(scene: Scene, response) -> None:
    html = response.content.decode()
    for secret in ("alpha-owner@", "alpha-admin@", "alpha-member@", scene.invitation.email):
        assert secret not in html


# ---------------------------------------------------------------------------- one case per URL name


def case_list(scene: Scene) -> None:
    response = scene.client.get(reverse("workspaces:list"))
    assert response.status_code == 200
    assert scene.alpha.workspace not in [m.workspace for m in response.context["memberships"]]
    assert f'value="{scene.alpha.workspace.pk}"' not in response.content.decode()


def case_create(scene: Scene) -> None:
    response = scene.client.post(reverse("workspaces:create"), {"name": "Alpha"})
    assert response.status_code == 302
    created = Workspace.objects.exclude(pk=scene.alpha.workspace.pk).get(name="Alpha")
    assert list(Membership.objects.filter(workspace=created).values_list("user", flat=True)) == [scene.intruder.pk]


def case_switch(scene: Scene) -> None:
    before = scene.client.session["current_workspace_id"]
    response = scene.client.post(reverse("workspaces:switch"), {"workspace": scene.alpha.workspace.pk})
    assert response.status_code == 404
    assert scene.client.session["current_workspace_id"] == before


def case_settings(scene: Scene) -> None:
    page = scene.client.get(reverse("workspaces:settings"))
    assert page.status_code == 200
    assert page.context["current_workspace"] != scene.alpha.workspace
    response = scene.client.post(reverse("workspaces:settings"), {"name": "Renamed by intruder"})
    assert response.status_code == 302  # renames the intruder's own workspace, not alpha


def case_response_cache(scene: Scene) -> None:
    response = scene.client.post(reverse("workspaces:response_cache"), {"response_cache": "on"})
    # Changes the intruder's own workspace (owners and admins) or is refused; never alpha's.
    assert response.status_code in (302, 403)
    scene.alpha.workspace.refresh_from_db()
    assert not scene.alpha.workspace.response_cache


def case_delete(scene: Scene) -> None:
    response = scene.client.post(reverse("workspaces:delete"), {"confirm_name": "Alpha"})
    # An owner is refused because "Alpha" is not the name of their workspace; others may not delete.
    assert response.status_code == (400 if scene.intruder_is_owner else 403)


def case_leave(scene: Scene) -> None:
    response = scene.client.post(reverse("workspaces:leave"))
    # Leaves (or, as last owner, is refused) the intruder's own workspace only.
    assert response.status_code == 302


def case_members(scene: Scene) -> None:
    response = scene.client.get(reverse("workspaces:members"))
    assert response.status_code == 200
    assert all(m.workspace_id != scene.alpha.workspace.pk for m in response.context["members"])
    _shows_nothing_of_alpha(scene, response)


def case_invite(scene: Scene) -> None:
    response = scene.client.post(reverse("workspaces:invite"), {"email": "friend@example.com", "role": "member"})
    assert response.status_code == 302
    invitation = Invitation.objects.get(email="friend@example.com")
    assert invitation.workspace_id != scene.alpha.workspace.pk


def case_member_role(scene: Scene) -> None:
    for membership in (scene.alpha.owner_membership, scene.alpha.member_membership):
        response = scene.client.post(reverse("workspaces:member_role", args=[membership.pk]), {"role": "owner"})
        assert response.status_code == 404


def case_member_remove(scene: Scene) -> None:
    for membership in (scene.alpha.owner_membership, scene.alpha.member_membership):
        response = scene.client.post(reverse("workspaces:member_remove", args=[membership.pk]))
        assert response.status_code == 404


def case_invitation_resend(scene: Scene) -> None:
    response = scene.client.post(reverse("workspaces:invitation_resend", args=[scene.invitation.pk]))
    assert response.status_code == 404


def case_invitation_revoke(scene: Scene) -> None:
    response = scene.client.post(reverse("workspaces:invitation_revoke", args=[scene.invitation.pk]))
    assert response.status_code == 404


def case_invitation_accept(scene: Scene) -> None:
    # A leaked link is no use to anyone without the invited address.
    response = scene.client.post(reverse("workspaces:invitation_accept", args=[scene.token]))
    assert response.status_code == 400
    assert not Membership.objects.filter(workspace=scene.alpha.workspace, user=scene.intruder).exists()


CASES: dict[str, Callable[[Scene], None]] = {
    "list": case_list,
    "create": case_create,
    "switch": case_switch,
    "settings": case_settings,
    "response_cache": case_response_cache,
    "delete": case_delete,
    "leave": case_leave,
    "members": case_members,
    "invite": case_invite,
    "member_role": case_member_role,
    "member_remove": case_member_remove,
    "invitation_resend": case_invitation_resend,
    "invitation_revoke": case_invitation_revoke,
    "invitation_accept": case_invitation_accept,
}

# URLs that take the id of an object of the current workspace, and that object in a scene.
OBJECT_URLS: dict[str, Callable[[Scene], int]] = {
    "member_role": lambda s: s.alpha.member_membership.pk,
    "member_remove": lambda s: s.alpha.member_membership.pk,
    "invitation_resend": lambda s: s.invitation.pk,
    "invitation_revoke": lambda s: s.invitation.pk,
}


def object_url(name: str, scene: Scene) -> str:
    return reverse(f"workspaces:{name}", args=[OBJECT_URLS[name](scene)])


def test_every_workspace_url_has_a_case():
    names = {pattern.name for pattern in urls.urlpatterns}
    assert names == set(CASES)
    with_ids = {p.name for p in urls.urlpatterns if any(k.endswith("_id") for k in p.pattern.converters)}
    assert with_ids == set(OBJECT_URLS)


@pytest.fixture
def scene_for(alpha, beta, outsider, invite, client_for):
    """`scene_for(who)`: alpha with a pending invitation, and a signed-in intruder who is
    `outsider` (with the personal workspace every sign-up gets) or a member of beta."""

    def make(who: str) -> Scene:
        invitation, token = invite(alpha, "pending@example.com")
        if who == "outsider":
            intruder, workspace = outsider, services.workspace_create_personal(user=outsider)
        else:
            intruder, workspace = getattr(beta, who.removeprefix("beta_")), beta.workspace
        return Scene(alpha, invitation, token, intruder, client_for(intruder, workspace))

    return make


@pytest.mark.outsider(*(f"workspaces:{name}" for name in CASES))
@pytest.mark.parametrize("who", ["outsider", "beta_owner", "beta_admin"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_intruder_cannot_reach_alpha(scene_for, name, who):
    scene = scene_for(who)
    before = alpha_state(scene.alpha)

    CASES[name](scene)

    assert alpha_state(scene.alpha) == before


@pytest.mark.parametrize("name", sorted(OBJECT_URLS))
def test_beta_member_without_rights_gets_the_same_answer_for_alphas_ids_as_for_missing_ones(scene_for, name):
    scene = scene_for("beta_member")
    before = alpha_state(scene.alpha)

    foreign = scene.client.post(object_url(name, scene), {"role": "owner"})
    missing = scene.client.post(reverse(f"workspaces:{name}", args=[999999]), {"role": "owner"})

    assert foreign.status_code == missing.status_code == 403
    assert alpha_state(scene.alpha) == before


@pytest.mark.parametrize("name", sorted(OBJECT_URLS))
def test_user_without_any_workspace_is_sent_to_create_one_and_changes_nothing(
    alpha, invite, outsider, client_for, name
):
    invitation, token = invite(alpha, "pending@example.com")
    scene = Scene(alpha, invitation, token, outsider, client_for(outsider, alpha.workspace))
    before = alpha_state(alpha)

    response = scene.client.post(object_url(name, scene), {"role": "owner"})

    assert response.status_code == 302
    assert response["Location"] == reverse("workspaces:create")
    assert alpha_state(alpha) == before


@pytest.mark.parametrize("name", sorted(OBJECT_URLS))
def test_own_workspace_ids_still_work_for_the_intruder(scene_for, beta, invite, name):
    # Guards the 404s above: the same URLs do act on the intruder's own workspace.
    scene = scene_for("beta_owner")
    own_invitation, _ = invite(beta, "beta-friend@example.com")
    own = Scene(beta, own_invitation, "", beta.owner, scene.client)

    response = scene.client.post(object_url(name, own), {"role": "admin"})

    assert response.status_code == 302
