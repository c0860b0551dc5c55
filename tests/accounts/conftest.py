"""Fixtures for the accounts tests: a staff member (superuser) and a client signed in as them."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from apps.accounts.models import User
from tests.factories import UserFactory


@pytest.fixture
def staff(db: Any) -> User:
    return UserFactory.create(email="staff@example.com", is_staff=True, is_superuser=True)


@pytest.fixture
def staff_client(staff: User) -> Client:
    client = Client()
    client.force_login(staff)
    return client
