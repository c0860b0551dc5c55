"""Which limits apply: site defaults (constance, else the module defaults), the plan, the
workspace's override, the key's own limits."""

from __future__ import annotations

import pytest
from constance import config
from constance import settings as constance_settings

from apps.ratelimits import selectors
from apps.ratelimits.defaults import DEFAULTS, RATE_LIMIT_SETTINGS
from apps.ratelimits.selectors import Limits, SubjectLimits, ratelimit_limits
from tests.factories import UserFactory, WorkspaceFactory
from tests.ratelimits.conftest import api_key, override

pytestmark = pytest.mark.django_db


@pytest.fixture
def constance_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """The RATE_LIMIT_* entries as they will be in CONSTANCE_CONFIG."""
    for name, (default, help_text) in RATE_LIMIT_SETTINGS.items():
        monkeypatch.setitem(constance_settings.CONFIG, name, (default, help_text, int))


def test_defaults_come_from_the_module_while_constance_lacks_the_keys(monkeypatch):
    for name in RATE_LIMIT_SETTINGS:
        monkeypatch.delitem(constance_settings.CONFIG, name, raising=False)
    workspace = WorkspaceFactory.create()
    user = UserFactory.create()
    key = api_key()

    limits = ratelimit_limits(workspace=workspace, user=user, api_key=key)

    assert limits == Limits(
        workspace=SubjectLimits(
            "workspace", str(workspace.pk), DEFAULTS["RATE_LIMIT_WORKSPACE_RPM"], DEFAULTS["RATE_LIMIT_WORKSPACE_TPM"]
        ),
        user=SubjectLimits(
            "user", f"{workspace.pk}:{user.pk}", DEFAULTS["RATE_LIMIT_USER_RPM"], DEFAULTS["RATE_LIMIT_USER_TPM"]
        ),
        key=SubjectLimits("key", key.pk, DEFAULTS["RATE_LIMIT_KEY_RPM"], DEFAULTS["RATE_LIMIT_KEY_TPM"]),
    )
    assert limits.key is not None
    assert limits.user is not None
    assert (limits.key.rpm, limits.user.tpm, limits.workspace.rpm) == (60, 200_000, 600)


def test_defaults_come_from_constance_when_configured(constance_keys):
    config.RATE_LIMIT_KEY_RPM = 7
    config.RATE_LIMIT_WORKSPACE_TPM = 0

    limits = ratelimit_limits(workspace=WorkspaceFactory.create(), api_key=api_key())

    assert limits.key is not None
    assert limits.key.rpm == 7
    assert limits.key.tpm == DEFAULTS["RATE_LIMIT_KEY_TPM"]
    assert limits.workspace.tpm == 0


def test_site_defaults_are_read_in_one_query(constance_keys, django_assert_num_queries):
    workspace, user, key = WorkspaceFactory.create(), UserFactory.create(), api_key()

    # constance values, the plan (the workspace's entitlements and the default's), the workspace override
    with django_assert_num_queries(3):
        ratelimit_limits(workspace=workspace, user=user, api_key=key)
    with django_assert_num_queries(2):  # the plan is remembered on the workspace for the request
        ratelimit_limits(workspace=workspace, user=user, api_key=key)


def test_workspace_override_replaces_only_the_fields_it_sets():
    workspace, other = WorkspaceFactory.create(), WorkspaceFactory.create()
    override(workspace, key_rpm=5, user_tpm=0, workspace_rpm=50)

    limits = ratelimit_limits(workspace=workspace, user=UserFactory.create(), api_key=api_key())

    assert limits.key is not None

    assert limits.user is not None
    assert (limits.key.rpm, limits.key.tpm) == (5, DEFAULTS["RATE_LIMIT_KEY_TPM"])
    assert (limits.user.rpm, limits.user.tpm) == (DEFAULTS["RATE_LIMIT_USER_RPM"], 0)
    assert (limits.workspace.rpm, limits.workspace.tpm) == (50, DEFAULTS["RATE_LIMIT_WORKSPACE_TPM"])
    assert ratelimit_limits(workspace=other).workspace.rpm == DEFAULTS["RATE_LIMIT_WORKSPACE_RPM"]


def test_key_limits_win_for_the_key_subject_only():
    workspace = WorkspaceFactory.create()
    override(workspace, key_rpm=5, key_tpm=500, workspace_rpm=50)

    limits = ratelimit_limits(workspace=workspace, api_key=api_key(rpm_limit=2, tpm_limit=None))

    assert limits.key is not None
    assert (limits.key.rpm, limits.key.tpm) == (2, 500)  # the key's own rpm, the workspace's tpm
    assert limits.workspace.rpm == 50


def test_key_without_limit_attributes_uses_the_workspace_key_limits():
    workspace = WorkspaceFactory.create()
    override(workspace, key_rpm=5)

    class BareKey:
        pk = 99

    limits = ratelimit_limits(workspace=workspace, api_key=BareKey())

    assert limits.key == SubjectLimits("key", "99", 5, DEFAULTS["RATE_LIMIT_KEY_TPM"])


def test_plan_limits_sit_between_the_site_defaults_and_the_workspace_override(monkeypatch):
    workspace = WorkspaceFactory.create()
    monkeypatch.setattr(selectors, "plan_rate_limits", lambda *, workspace: {"workspace_rpm": 300, "key_rpm": 30})
    override(workspace, key_rpm=3)

    limits = ratelimit_limits(workspace=workspace, api_key=api_key())

    assert limits.workspace.rpm == 300
    assert limits.key is not None
    assert limits.key.rpm == 3


def test_subjects_are_the_ones_given_most_specific_first():
    workspace, user = WorkspaceFactory.create(), UserFactory.create()

    assert [s.subject for s in ratelimit_limits(workspace=workspace).subjects] == ["workspace"]
    assert [s.subject for s in ratelimit_limits(workspace=workspace, user=user, api_key=api_key()).subjects] == [
        "key",
        "user",
        "workspace",
    ]


def test_member_budget_is_per_workspace():
    user = UserFactory.create()
    first, second = WorkspaceFactory.create(), WorkspaceFactory.create()

    a = ratelimit_limits(workspace=first, user=user).user
    b = ratelimit_limits(workspace=second, user=user).user

    assert a is not None

    assert b is not None
    assert a.id != b.id
