"""API keys in the back office: a read-only list that never shows the hash, no adding or
deleting, and a revoke action that goes through the service and is audited."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from apps.accounts.models import User
from apps.apikeys.models import ApiKey
from apps.apikeys.services import apikey_revoke
from apps.audit.models import AuditEvent
from tests.apikeys.conftest import make_key
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:apikeys_apikey_changelist")


@pytest.fixture
def staff(db: Any) -> User:
    return UserFactory.create(email="staff@example.com", is_staff=True, is_superuser=True)


@pytest.fixture
def staff_client(staff: User) -> Client:
    client = Client()
    client.force_login(staff)
    return client


def test_changelist_shows_keys_without_their_hash(alpha, beta, staff_client):
    key, raw_key = make_key(alpha, name="Support bot")
    make_key(beta, name="Beta bot")

    response = staff_client.get(CHANGELIST)

    assert response.status_code == 200
    html = response.content.decode()
    assert "Support bot" in html
    assert "Beta bot" in html
    assert f"{key.prefix}…" in html
    assert key.key_hash not in html
    assert raw_key not in html


@pytest.mark.parametrize("term", ["prefix", "name", "slug"])
def test_search_by_prefix_name_or_workspace(alpha, beta, staff_client, term):
    key, _ = make_key(alpha, name="Support bot")
    other, _ = make_key(beta, name="Beta bot")
    q = {"prefix": key.prefix, "name": "Support", "slug": alpha.workspace.slug}[term]

    response = staff_client.get(CHANGELIST, {"q": q})

    shown = list(response.context["cl"].result_list)
    assert key in shown
    assert other not in shown


def test_change_page_is_read_only_and_hides_the_hash(alpha, staff_client):
    key, _ = make_key(alpha)
    url = reverse("admin:apikeys_apikey_change", args=[key.pk])

    response = staff_client.get(url)

    assert response.status_code == 200
    assert key.key_hash not in response.content.decode()
    staff_client.post(url, {"name": "renamed"})
    key.refresh_from_db()
    assert key.name == "Test key"


def test_keys_cannot_be_added_or_deleted_in_the_admin(alpha, staff_client):
    key, _ = make_key(alpha)

    assert staff_client.get(reverse("admin:apikeys_apikey_add")).status_code == 403
    assert staff_client.post(reverse("admin:apikeys_apikey_delete", args=[key.pk]), {"post": "yes"}).status_code == 403
    assert ApiKey.objects.filter(pk=key.pk).exists()


def test_revoke_action_revokes_through_the_service_and_is_audited(alpha, beta, staff, staff_client):
    first, _ = make_key(alpha)
    second, _ = make_key(beta)
    done, _ = make_key(alpha)
    apikey_revoke(key=done, acting_user=alpha.owner)
    untouched, _ = make_key(alpha)

    response = staff_client.post(
        CHANGELIST,
        {"action": "revoke_keys", "_selected_action": [first.pk, second.pk, done.pk]},
        follow=True,
    )

    assert "Revoked 2 key(s). 1 selected key(s) were already revoked." in response.content.decode()
    for key in (first, second):
        key.refresh_from_db()
        assert (key.revoked_at is not None, key.revoked_by) == (True, staff)
    untouched.refresh_from_db()
    assert untouched.revoked_at is None
    events = AuditEvent.objects.filter(action="apikey.revoke", actor=staff)
    assert {(e.target_id, e.workspace_id, e.metadata["via"]) for e in events} == {
        (str(first.pk), alpha.workspace.pk, "admin"),
        (str(second.pk), beta.workspace.pk, "admin"),
    }


def test_staff_who_may_only_view_cannot_revoke(alpha):
    viewer = UserFactory.create(email="viewer@example.com", is_staff=True)
    viewer.user_permissions.set(Permission.objects.filter(codename="view_apikey"))
    client = Client()
    client.force_login(viewer)
    key, _ = make_key(alpha)

    assert client.get(CHANGELIST).status_code == 200
    client.post(CHANGELIST, {"action": "revoke_keys", "_selected_action": [key.pk]})

    key.refresh_from_db()
    assert key.revoked_at is None


def test_changelist_queries_do_not_grow_with_keys(alpha, beta, staff_client, django_assert_max_num_queries):
    for team in (alpha, beta):
        for i in range(3):
            make_key(team, name=f"key {i}")
    staff_client.get(CHANGELIST)
    with django_assert_max_num_queries(30) as few:
        staff_client.get(CHANGELIST)

    for team in (alpha, beta):
        for i in range(20):
            make_key(team, name=f"more {i}", by="admin")

    with django_assert_max_num_queries(len(few.captured_queries)):
        response = staff_client.get(CHANGELIST)
    assert len(response.context["cl"].result_list) == 46
