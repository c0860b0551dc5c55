"""Counting requests and tokens against key, member and workspace windows."""

from __future__ import annotations

import re

import pytest

from apps.ratelimits.decisions import RateLimitDecision, WindowState
from apps.ratelimits.exceptions import RateLimited
from apps.ratelimits.selectors import Limits, SubjectLimits
from apps.ratelimits.services import ratelimit_check, ratelimit_enforce, ratelimit_record_tokens
from apps.ratelimits.storage import ratelimit_storage
from apps.workspaces.models import Workspace
from tests.factories import UserFactory, WorkspaceFactory
from tests.ratelimits.conftest import FakeTime, api_key, override

pytestmark = pytest.mark.django_db

DURATION = re.compile(r"^(\d+m)?\d+s$")


@pytest.fixture
def workspace() -> Workspace:
    return WorkspaceFactory.create()


def window(decision: RateLimitDecision, subject: str, kind: str) -> WindowState:
    return next(w for w in decision.windows if w.subject == subject and w.kind == kind)


def test_refuses_the_request_over_the_rpm_limit_with_retry_after_and_headers(workspace):
    override(workspace, key_rpm=3)
    key = api_key()

    allowed = [ratelimit_check(workspace=workspace, api_key=key) for _ in range(3)]
    refused = ratelimit_check(workspace=workspace, api_key=key)

    assert all(d.allowed for d in allowed)
    assert refused.allowed is False
    assert 1 <= refused.retry_after <= 120
    assert refused.exceeded is not None
    assert (refused.exceeded.subject, refused.exceeded.kind, refused.exceeded.limit) == ("key", "requests", 3)
    assert "3 requests per minute for this API key" in refused.message
    headers = refused.headers()
    assert headers["x-ratelimit-limit-requests"] == "3"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert DURATION.match(headers["x-ratelimit-reset-requests"])
    assert headers["x-ratelimit-limit-tokens"] == "200000"
    assert headers["Retry-After"] == str(refused.retry_after)


def test_allowed_requests_count_down_the_remaining_header(workspace):
    override(workspace, key_rpm=3)
    key = api_key()

    headers = [ratelimit_check(workspace=workspace, api_key=key, tokens=1000).headers() for _ in range(3)]

    assert [h["x-ratelimit-remaining-requests"] for h in headers] == ["2", "1", "0"]
    assert [h["x-ratelimit-remaining-tokens"] for h in headers] == ["199000", "198000", "197000"]
    assert all(DURATION.match(h["x-ratelimit-reset-tokens"]) for h in headers)
    assert all("Retry-After" not in h for h in headers)


def test_headers_report_the_tightest_subject(workspace):
    override(workspace, key_rpm=10, user_rpm=8, workspace_rpm=4, key_tpm=1000, workspace_tpm=5000)
    key, user = api_key(), UserFactory.create()

    headers = ratelimit_check(workspace=workspace, user=user, api_key=key, tokens=100).headers()

    assert (headers["x-ratelimit-limit-requests"], headers["x-ratelimit-remaining-requests"]) == ("4", "3")
    assert (headers["x-ratelimit-limit-tokens"], headers["x-ratelimit-remaining-tokens"]) == ("1000", "900")


def test_refuses_a_token_estimate_that_does_not_fit(workspace):
    override(workspace, key_tpm=1000)
    key = api_key()

    first = ratelimit_check(workspace=workspace, api_key=key, tokens=600)
    too_many = ratelimit_check(workspace=workspace, api_key=key, tokens=600)
    fitting = ratelimit_check(workspace=workspace, api_key=key, tokens=400)

    assert first.allowed is True
    assert too_many.allowed is False
    assert too_many.exceeded is not None
    assert (too_many.exceeded.kind, too_many.exceeded.remaining) == ("tokens", 400)
    assert too_many.request_too_large is False
    assert too_many.retry_after >= 1
    assert fitting.allowed is True  # the refused estimate took nothing


def test_an_estimate_above_the_tpm_limit_is_refused_as_too_large(workspace):
    override(workspace, key_tpm=1000)

    decision = ratelimit_check(workspace=workspace, api_key=api_key(), tokens=1001)

    assert decision.allowed is False
    assert decision.request_too_large is True
    assert decision.retry_after == 60
    assert "more tokens than the limit allows" in decision.message


def test_recorded_tokens_refuse_the_next_request(workspace):
    override(workspace, key_tpm=1000)
    key = api_key()
    assert ratelimit_check(workspace=workspace, api_key=key, tokens=100).allowed

    ratelimit_record_tokens(workspace=workspace, api_key=key, tokens=2000)  # over the limit: still counted
    decision = ratelimit_check(workspace=workspace, api_key=key)  # an estimate of 0 tokens

    assert decision.allowed is False
    assert decision.exceeded is not None
    assert (decision.exceeded.kind, decision.exceeded.remaining) == ("tokens", 0)
    assert decision.retry_after >= 1


def test_recording_zero_or_negative_tokens_changes_nothing(workspace):
    override(workspace, key_tpm=1000)
    key = api_key()
    ratelimit_check(workspace=workspace, api_key=key, tokens=500)

    ratelimit_record_tokens(workspace=workspace, api_key=key, tokens=0)
    ratelimit_record_tokens(workspace=workspace, api_key=key, tokens=-300)

    assert ratelimit_check(workspace=workspace, api_key=key, tokens=500).allowed
    assert not ratelimit_check(workspace=workspace, api_key=key, tokens=1).allowed


def test_zero_means_unlimited(workspace):
    override(workspace, key_rpm=0, key_tpm=0, user_rpm=0, user_tpm=0, workspace_rpm=0, workspace_tpm=0)
    key, user = api_key(), UserFactory.create()

    decisions = [ratelimit_check(workspace=workspace, user=user, api_key=key, tokens=10**9) for _ in range(100)]

    assert all(d.allowed for d in decisions)
    assert decisions[-1].windows == ()
    assert decisions[-1].headers() == {}


def test_an_unlimited_kind_has_no_headers(workspace):
    override(workspace, key_rpm=0, workspace_rpm=0, key_tpm=100, workspace_tpm=0)

    headers = ratelimit_check(workspace=workspace, api_key=api_key(), tokens=10).headers()

    assert headers == {
        "x-ratelimit-limit-tokens": "100",
        "x-ratelimit-remaining-tokens": "90",
        "x-ratelimit-reset-tokens": headers["x-ratelimit-reset-tokens"],
    }


def test_a_refused_request_does_not_consume_the_other_budgets(workspace):
    override(workspace, key_rpm=2, workspace_rpm=3, key_tpm=0, workspace_tpm=0)
    a, b = api_key(), api_key()

    assert [ratelimit_check(workspace=workspace, api_key=a).allowed for _ in range(3)] == [True, True, False]
    # The request key A was refused did not count against the workspace: one request is left.
    assert [ratelimit_check(workspace=workspace, api_key=b).allowed for _ in range(3)] == [True, False, False]
    refused = ratelimit_check(workspace=workspace, api_key=b)
    assert refused.exceeded is not None
    assert refused.exceeded.subject == "workspace"
    # And the requests the workspace refused did not count against key B.
    assert window(refused, "key", "requests").remaining == 1


def test_a_request_refused_for_tokens_does_not_count_as_a_request(workspace):
    override(workspace, key_rpm=2, key_tpm=1000)
    key = api_key()

    assert ratelimit_check(workspace=workspace, api_key=key, tokens=900).allowed
    assert not ratelimit_check(workspace=workspace, api_key=key, tokens=900).allowed

    assert ratelimit_check(workspace=workspace, api_key=key, tokens=100).allowed  # the second request


def test_a_request_losing_a_race_gives_back_what_it_counted(workspace, monkeypatch):
    override(workspace, key_rpm=2, workspace_rpm=5, key_tpm=0, workspace_tpm=0)
    key = api_key()
    storage = ratelimit_storage()
    acquire = storage.acquire_sliding_window_entry
    raced: list[bool] = []

    def concurrent_request_first(key_name: str, limit: int, expiry: int, amount: int = 1) -> bool:
        # Between this request's snapshot and its workspace hit, another process fills the workspace.
        if key_name == f"requests/workspace/{workspace.pk}" and not raced:
            raced.append(acquire(key_name, limit, expiry, limit))
        return acquire(key_name, limit, expiry, amount)

    monkeypatch.setattr(storage, "acquire_sliding_window_entry", concurrent_request_first)

    decision = ratelimit_check(workspace=workspace, api_key=key)

    assert raced == [True]
    assert decision.allowed is False
    assert decision.exceeded is not None
    assert decision.exceeded.subject == "workspace"
    assert decision.retry_after >= 1
    # The key's hit was given back: with the workspace unlimited, the key still has both requests.
    monkeypatch.undo()
    override(workspace, workspace_rpm=0)
    assert [ratelimit_check(workspace=workspace, api_key=key).allowed for _ in range(3)] == [True, True, False]


def test_waiting_retry_after_admits_the_request(clock: FakeTime):
    limits = Limits(workspace=SubjectLimits("workspace", "w-clock", rpm=3, tpm=0))
    check = lambda: ratelimit_check(workspace=Workspace(pk=1), limits=limits)  # noqa: E731
    assert all(check().allowed for _ in range(3))  # 10 s into a minute

    refused = check()
    # The minute ends in 50 s; then the three requests weigh 3 * ttl / 60 and fit once ttl < 60.
    assert refused.retry_after == 51
    clock.advance(refused.retry_after - 1)
    assert check().allowed is False
    clock.advance(1)
    assert check().allowed is True


def test_the_previous_minute_weighs_less_as_it_slides_out(clock: FakeTime):
    limits = Limits(workspace=SubjectLimits("workspace", "w-slide", rpm=0, tpm=1000))
    check = lambda tokens: ratelimit_check(workspace=Workspace(pk=1), limits=limits, tokens=tokens)  # noqa: E731
    assert check(1000).allowed

    clock.advance(50 + 30)  # the next minute, half-way: the 1000 tokens weigh 500
    assert check(501).allowed is False
    assert check(500).allowed is True


def test_enforce_raises_rate_limited_with_the_headers(workspace):
    override(workspace, key_rpm=1)
    key = api_key()
    assert ratelimit_enforce(workspace=workspace, api_key=key).allowed

    with pytest.raises(RateLimited) as raised:
        ratelimit_enforce(workspace=workspace, api_key=key)

    error = raised.value
    assert error.retry_after >= 1
    assert error.headers["Retry-After"] == str(error.retry_after)
    assert error.headers["x-ratelimit-remaining-requests"] == "0"
    assert str(error) == error.message == error.decision.message
