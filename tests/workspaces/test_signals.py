"""What the workspaces domain announces (apps/workspaces/signals.py): `workspace_created` inside
the creating transaction (what must exist with every workspace is created with it, or nothing
is), `member_joined` once on commit and never for a rolled-back join. And what workspaces does
when accounts announces a new user or a deletion."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import transaction

from apps.accounts.services import user_create, user_delete
from apps.credits.models import CreditAccount
from apps.workspaces import services
from apps.workspaces.models import Membership, Workspace
from apps.workspaces.roles import Role
from apps.workspaces.signals import member_joined, workspace_created
from tests.events import Boom, listening, rolled_back
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


# ---------------------------------------------------------------------------- workspace created


def test_workspace_created_is_sent_inside_the_creating_transaction(outsider):
    with listening(workspace_created) as heard, transaction.atomic():
        workspace = services.workspace_create(acting_user=outsider, name="Lab")
        # Heard before anything commits: receivers write in the same transaction.
        assert heard.of(workspace_created) == [{"workspace": workspace, "user": outsider, "is_personal": False}]
        assert heard.senders(workspace_created) == [Workspace]


def test_a_failing_receiver_rolls_the_new_workspace_back(outsider):
    def refuse(**kwargs: Any) -> None:
        raise Boom

    workspace_created.connect(refuse, dispatch_uid="test-refuse")
    try:
        with pytest.raises(Boom):
            services.workspace_create(acting_user=outsider, name="Lab")
    finally:
        workspace_created.disconnect(dispatch_uid="test-refuse")

    assert not Workspace.objects.filter(name="Lab").exists()
    assert not Membership.objects.filter(user=outsider).exists()


def test_a_new_workspace_has_its_credit_account_without_any_commit(outsider):
    workspace = services.workspace_create(acting_user=outsider, name="Lab")

    assert CreditAccount.objects.filter(workspace=workspace).exists()


# ---------------------------------------------------------------------------- member joined


def test_member_joined_is_sent_once_on_commit(alpha, invite, outsider, django_capture_on_commit_callbacks):
    invitation, token = invite(alpha, outsider.email, role=Role.ADMIN)

    with listening(member_joined) as heard:
        with django_capture_on_commit_callbacks() as callbacks:
            services.workspace_invitation_accept(token=token, acting_user=outsider)
        assert heard.of(member_joined) == []
        for callback in callbacks:
            callback()

    membership = Membership.objects.get(workspace=alpha.workspace, user=outsider)
    assert heard.of(member_joined) == [{"membership": membership, "invitation": invitation}]
    assert heard.rows(member_joined, "membership", "workspace_id", "user_id", "role") == [
        (alpha.workspace.pk, outsider.pk, Role.ADMIN)
    ]
    assert heard.senders(member_joined) == [Workspace]


def test_a_join_rolled_back_is_not_announced(alpha, invite, outsider, django_capture_on_commit_callbacks):
    _, token = invite(alpha, outsider.email)

    with listening(member_joined) as heard, django_capture_on_commit_callbacks(execute=True):
        rolled_back(lambda: services.workspace_invitation_accept(token=token, acting_user=outsider))

    assert heard.of(member_joined) == []
    assert not Membership.objects.filter(workspace=alpha.workspace, user=outsider).exists()


def test_accepting_an_invitation_to_a_workspace_one_belongs_to_is_no_join(
    alpha, invite, outsider, django_capture_on_commit_callbacks
):
    _, token = invite(alpha, outsider.email)
    Membership.objects.create(workspace=alpha.workspace, user=outsider, role=Role.MEMBER)  # joined meanwhile

    with listening(member_joined) as heard, django_capture_on_commit_callbacks(execute=True):
        services.workspace_invitation_accept(token=token, acting_user=outsider)

    assert heard.of(member_joined) == []


# ---------------------------------------------------------------------------- accounts' events


def test_a_new_user_has_a_personal_workspace_and_credit_account_without_any_commit(db):
    user = user_create(email="new@example.com", password="a-long-passphrase-9")

    workspace = Workspace.objects.get(memberships__user=user)
    assert workspace.is_personal
    assert Membership.objects.get(workspace=workspace).role == Role.OWNER
    assert CreditAccount.objects.filter(workspace=workspace).exists()


def test_deleting_a_user_deletes_the_workspaces_they_alone_own(alpha):
    solo = services.workspace_create(acting_user=alpha.admin, name="Solo")
    shared = services.workspace_create(acting_user=alpha.admin, name="Shared")
    Membership.objects.create(workspace=shared, user=UserFactory.create(), role=Role.OWNER)

    user_delete(user=alpha.admin, acting_user=alpha.admin)

    assert Workspace.objects.get(pk=solo.pk).deleted_at is not None
    assert Workspace.objects.get(pk=shared.pk).deleted_at is None
    assert Workspace.objects.get(pk=alpha.workspace.pk).deleted_at is None  # alpha's owner is someone else
