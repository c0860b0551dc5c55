"""The user model's invariants, the password validator and the services used outside the web
forms (seed data, staff tooling)."""

from __future__ import annotations

import pytest
from allauth.account.models import EmailAddress
from constance.test import override_config
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from apps.accounts.models import DEFAULT_PREFERENCES, User
from apps.accounts.services import user_create, user_email_set
from apps.accounts.validators import ConfigurablePasswordValidator
from apps.workspaces.models import Membership
from apps.workspaces.roles import Role
from tests.accounts.helpers import audit_rows
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_create_user_lowercases_the_email() -> None:
    user = User.objects.create_user(email="Grace.Hopper@Example.COM", password="x-long-password-1")

    assert user.email == "grace.hopper@example.com"
    assert user.check_password("x-long-password-1")
    assert not user.is_staff


def test_email_is_unique_regardless_of_case() -> None:
    UserFactory.create(email="dup@example.com")

    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.create(email="DUP@example.com")


def test_create_user_requires_an_email() -> None:
    with pytest.raises(ValueError, match="email"):
        User.objects.create_user(email="", password="x")


def test_create_superuser_is_staff_and_superuser() -> None:
    user = User.objects.create_superuser(email="root@example.com", password="x-long-password-1")

    assert user.is_staff
    assert user.is_superuser


def test_natural_key_lookup_ignores_case() -> None:
    user = UserFactory.create(email="nat@example.com")

    assert User.objects.get_by_natural_key("NAT@EXAMPLE.COM") == user


def test_name_falls_back_to_the_email_local_part() -> None:
    assert UserFactory.create(email="lin@example.com", display_name="").name == "lin"
    assert UserFactory.create(display_name="Lin Chen").name == "Lin Chen"


def test_preference_falls_back_to_the_defaults() -> None:
    user = UserFactory.create()
    user.preferences = {"theme": "dark"}

    assert user.preference("theme") == "dark"
    assert user.preference("notifications") == DEFAULT_PREFERENCES["notifications"]
    assert user.preference("unknown") is None


def test_unknown_timezone_fails_model_validation() -> None:
    user = UserFactory.create()
    user.timezone = "Atlantis/Capital"

    with pytest.raises(ValidationError) as excinfo:
        user.full_clean()

    assert "timezone" in excinfo.value.message_dict


@override_config(PASSWORD_MIN_LENGTH=12, PASSWORD_REQUIRE_DIGIT=True, PASSWORD_REQUIRE_SYMBOL=True)
def test_password_validator_reports_every_broken_rule_at_once() -> None:
    with pytest.raises(ValidationError) as excinfo:
        ConfigurablePasswordValidator().validate("short")

    assert {e.code for e in excinfo.value.error_list} == {
        "password_too_short",
        "password_no_digit",
        "password_no_symbol",
    }
    assert ConfigurablePasswordValidator().get_help_text() == (
        "Your password must contain at least 12 characters, a digit, a symbol."
    )


@override_config(PASSWORD_MIN_LENGTH=6, PASSWORD_REQUIRE_DIGIT=False, PASSWORD_REQUIRE_SYMBOL=False)
def test_password_validator_follows_relaxed_config() -> None:
    ConfigurablePasswordValidator().validate("abcdef")

    assert ConfigurablePasswordValidator().get_help_text() == "Your password must contain at least 6 characters."


def test_user_create_sets_up_address_workspace_and_audit() -> None:
    user = user_create(email="Seed@Example.com", password="x-long-password-1", verified=True, display_name="Seed")

    assert user.email == "seed@example.com"
    assert list(EmailAddress.objects.filter(user=user).values_list("email", "verified", "primary")) == [
        ("seed@example.com", True, True)
    ]
    membership = Membership.objects.select_related("workspace").get(user=user)
    assert membership.role == Role.OWNER
    assert membership.workspace.name == "Seed's workspace"
    [row] = audit_rows("user.signup")
    assert row.metadata == {"method": "created"}


def test_user_email_set_replaces_every_address_and_is_unverified(staff: User) -> None:
    user = UserFactory.create(email="one@example.com")
    EmailAddress.objects.create(user=user, email="pending@example.com", verified=False)

    user_email_set(user=user, email=" Two@Example.com ", acting_user=staff)

    user.refresh_from_db()
    assert user.email == "two@example.com"
    assert list(EmailAddress.objects.filter(user=user).values_list("email", "verified", "primary")) == [
        ("two@example.com", False, True)
    ]
    [row] = audit_rows("user.email_change")
    assert row.actor == staff
    assert row.metadata == {"from": "one@example.com", "to": "two@example.com"}


def test_user_email_set_to_the_same_address_changes_nothing(staff: User) -> None:
    user = UserFactory.create(email="same@example.com")

    user_email_set(user=user, email="SAME@example.com", acting_user=staff)

    assert EmailAddress.objects.get(user=user).verified
    assert not audit_rows("user.email_change")
