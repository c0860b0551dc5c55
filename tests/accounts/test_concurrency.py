"""Races in account deletion, run for real with threads on PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from django.db import connection, transaction

from apps.accounts.services import user_delete
from apps.workspaces.models import Membership, Workspace
from apps.workspaces.roles import Role
from tests.factories import MembershipFactory, UserFactory, WorkspaceFactory

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL"),
]


def run_in_thread(target: Callable[[], None], errors: list[BaseException]) -> threading.Thread:
    def wrapper() -> None:
        try:
            target()
        except BaseException as exc:  # reported by the test, not lost in the thread
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=wrapper)
    thread.start()
    return thread


def test_two_co_owners_deleting_their_accounts_at_once_leave_no_ownerless_workspace() -> None:
    first, second = UserFactory.create(), UserFactory.create()
    shared = WorkspaceFactory.create(name="Co-owned")
    MembershipFactory.create(workspace=shared, user=first, role=Role.OWNER)
    MembershipFactory.create(workspace=shared, user=second, role=Role.OWNER)
    MembershipFactory.create(workspace=shared, user=UserFactory.create(), role=Role.MEMBER)
    barrier = threading.Barrier(2, timeout=10)
    errors: list[BaseException] = []

    def delete_first() -> None:
        with transaction.atomic():
            user_delete(user=first, acting_user=first)
            barrier.wait()
            # Hold the transaction open while the second deletion makes its checks.
            time.sleep(0.5)

    def delete_second() -> None:
        barrier.wait()
        user_delete(user=second, acting_user=second)

    threads = [run_in_thread(delete_first, errors), run_in_thread(delete_second, errors)]
    for thread in threads:
        thread.join(timeout=30)

    assert not errors
    shared.refresh_from_db()
    owners = Membership.objects.filter(workspace=shared, role=Role.OWNER).count()
    assert shared.deleted_at is not None or owners > 0
    assert shared.deleted_at is not None
    assert not Membership.objects.filter(workspace=shared).exists()
    assert not Workspace.objects.active().filter(pk=shared.pk).exists()
