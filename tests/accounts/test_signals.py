"""What the accounts domain announces (apps/accounts/signals.py): `user_created` and
`user_deleting` inside the account's own transaction (what every person has is made, or cleaned
up, with the user row, or not at all), `user_signed_up` once on commit and never for a sign-up
that was rolled back. And the domain error accounts raises."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from apps.accounts.models import User
from apps.accounts.services import AccountError, user_create, user_delete, user_suspend
from apps.accounts.signals import user_created, user_deleting, user_signed_up
from apps.core.errors import DomainError
from apps.workspaces.models import Workspace
from tests.events import Boom, listening, rolled_back
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-passphrase-9"


def test_user_create_announces_the_user_inside_its_transaction_and_the_sign_up_on_commit(
    django_capture_on_commit_callbacks,
):
    with listening(user_created, user_signed_up) as heard:
        with django_capture_on_commit_callbacks() as callbacks:
            user = user_create(email="new@example.com", password=PASSWORD)
        assert heard.of(user_created) == [{"user": user, "method": "created"}]
        assert heard.of(user_signed_up) == []  # not before the commit
        for callback in callbacks:
            callback()

    assert heard.of(user_signed_up) == [{"user": user, "method": "created"}]
    assert heard.senders(user_created) == heard.senders(user_signed_up) == [User]


def test_a_sign_up_rolled_back_is_not_announced(django_capture_on_commit_callbacks):
    with listening(user_signed_up) as heard, django_capture_on_commit_callbacks(execute=True):
        rolled_back(lambda: user_create(email="new@example.com", password=PASSWORD))

    assert heard.of(user_signed_up) == []
    assert not User.objects.filter(email="new@example.com").exists()
    assert not Workspace.objects.exists()


def test_the_sign_up_form_announces_one_sign_up_by_email(client: Client, django_capture_on_commit_callbacks):
    with listening(user_signed_up) as heard, django_capture_on_commit_callbacks(execute=True):
        client.post("/accounts/signup/", {"email": "new@example.com", "password1": PASSWORD, "password2": PASSWORD})

    user = User.objects.get(email="new@example.com")
    assert heard.of(user_signed_up) == [{"user": user, "method": "email"}]


def test_a_user_staff_add_is_created_but_did_not_sign_up(staff_client: Client, django_capture_on_commit_callbacks):
    with listening(user_created, user_signed_up) as heard, django_capture_on_commit_callbacks(execute=True):
        staff_client.post(
            "/admin/accounts/user/add/",
            {"email": "added@example.com", "password1": "Xyzzy-long-pass-1", "password2": "Xyzzy-long-pass-1"},
        )

    user = User.objects.get(email="added@example.com")
    assert heard.of(user_created) == [{"user": user, "method": "staff"}]
    assert heard.of(user_signed_up) == []


def test_a_failing_receiver_of_user_created_rolls_the_user_back():
    def refuse(**kwargs: Any) -> None:
        raise Boom

    user_created.connect(refuse, dispatch_uid="test-refuse")
    try:
        with pytest.raises(Boom):
            user_create(email="new@example.com", password=PASSWORD)
    finally:
        user_created.disconnect(dispatch_uid="test-refuse")

    assert not User.objects.filter(email="new@example.com").exists()


def test_user_deleting_is_sent_inside_the_deletion_with_the_user_still_there(alpha):
    seen: list[tuple[bool, Any, Any]] = []

    def check(user: User, acting_user: User, **kwargs: Any) -> None:
        seen.append((User.objects.filter(pk=user.pk).exists(), user, acting_user))

    user_deleting.connect(check, dispatch_uid="test-check")
    try:
        user_delete(user=alpha.member, acting_user=alpha.owner)
    finally:
        user_deleting.disconnect(dispatch_uid="test-check")

    assert seen == [(True, alpha.member, alpha.owner)]
    assert not User.objects.filter(pk=alpha.member.pk).exists()


def test_a_failing_receiver_of_user_deleting_keeps_the_account():
    user = UserFactory.create()

    def refuse(**kwargs: Any) -> None:
        raise Boom

    user_deleting.connect(refuse, dispatch_uid="test-refuse")
    try:
        with pytest.raises(Boom):
            user_delete(user=user, acting_user=user)
    finally:
        user_deleting.disconnect(dispatch_uid="test-refuse")

    assert User.objects.filter(pk=user.pk).exists()


def test_account_errors_are_domain_errors_with_a_4xx_status_and_a_stable_code(alpha):
    with pytest.raises(AccountError) as refused:
        user_suspend(user=alpha.owner, reason="no", acting_user=alpha.owner)

    assert isinstance(refused.value, DomainError)
    assert (refused.value.status_code, refused.value.code) == (400, "account_refused")
    assert refused.value.message == "You cannot suspend yourself."
