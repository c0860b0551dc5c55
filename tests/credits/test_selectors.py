"""Reads behind the credits page: balance by source, usage filters and totals, the chart."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from django.utils import timezone

from apps.credits.charts import MAX_PADDING_DAYS, usage_chart
from apps.credits.models import Reservation, Source
from apps.credits.selectors import (
    UsageFilters,
    credits_balance,
    credits_overview,
    usage_facts,
    usage_filter_choices,
    usage_member_choices,
    usage_queryset,
    usage_summary,
    usage_total_units,
    usage_totals_by_day,
    usage_totals_by_model,
)
from apps.credits.services import credits_release
from tests.credits.usage_data import charge, clock, fund, hold

pytestmark = pytest.mark.django_db

MAR_10 = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)


def _ids(qs) -> set[int]:
    return set(qs.values_list("pk", flat=True))


# ---------------------------------------------------------------------------- balance


def test_overview_of_a_workspace_without_account_is_empty(alpha):
    overview = credits_overview(workspace=alpha.workspace)

    assert overview.account is None
    assert overview.grants == overview.sources == []
    assert overview.balance.available_units == 0


def test_overview_totals_each_source_in_consumption_order(alpha):
    now = timezone.now()
    fund(alpha.workspace, "200", source=Source.PURCHASED)
    fund(alpha.workspace, "100", source=Source.SUBSCRIPTION, expires_at=now + timedelta(days=30))
    fund(alpha.workspace, "50", source=Source.TRIAL, expires_at=now + timedelta(days=14))
    fund(alpha.workspace, "5", source=Source.TRIAL, expires_at=now + timedelta(days=7))
    hold(alpha.workspace, alpha.member, 30_000)  # 3 credits held from the soonest trial grant

    overview = credits_overview(workspace=alpha.workspace)

    assert [g.source for g in overview.grants] == ["trial", "trial", "subscription", "purchased"]
    assert [(g.available_units, g.held_units) for g in overview.grants] == [
        (20_000, 30_000),
        (500_000, 0),
        (1_000_000, 0),
        (2_000_000, 0),
    ]
    by_source = {s.source: s for s in overview.sources}
    assert list(by_source) == ["trial", "subscription", "purchased"]
    assert by_source["trial"].available_units == 520_000
    assert by_source["trial"].held_units == 30_000
    assert by_source["trial"].grants == 2
    assert by_source["trial"].next_expiry_at == overview.grants[0].expires_at
    assert by_source["purchased"].next_expiry_at is None
    assert overview.trial_expires_at == overview.grants[1].expires_at  # the last trial credits
    assert overview.subscription_expires_at == overview.grants[2].expires_at
    assert overview.balance.available_units == 3_520_000
    assert overview.balance.held_units == 30_000
    assert overview.balance.balance_units == 3_550_000
    # The header widget's figures agree with the page's.
    assert credits_balance(workspace=alpha.workspace).available_units == overview.balance.available_units


def test_overview_never_counts_an_expired_grant(alpha):
    now = timezone.now()
    fund(alpha.workspace, "10", source=Source.TRIAL, expires_at=now + timedelta(days=1))
    fund(alpha.workspace, "7", source=Source.PURCHASED)

    with clock(now + timedelta(days=2)):  # expired, but the periodic task has not run yet
        overview = credits_overview(workspace=alpha.workspace)

    assert [g.source for g in overview.grants] == ["purchased"]
    assert overview.balance.available_units == 70_000
    assert overview.trial_expires_at is None


def test_overview_reads_only_its_own_workspace(alpha, beta):
    fund(alpha.workspace, "10")
    fund(beta.workspace, "99", source=Source.BONUS)

    overview = credits_overview(workspace=alpha.workspace)

    assert [(g.source, g.amount_units) for g in overview.grants] == [("purchased", 100_000)]


# ---------------------------------------------------------------------------- usage


@pytest.fixture
def usage(alpha, beta):
    """Alpha: four charges over three days, models and members mixed; a held and a released
    reservation that are not usage. Beta: a charge that must never show for alpha."""
    fund(alpha.workspace)
    fund(beta.workspace)
    rows = {
        "owner_text_10": charge(alpha.workspace, alpha.owner, 10_000, at=MAR_10),
        "member_image_11": charge(
            alpha.workspace, alpha.member, 40_000, service="image", model="dall-e-3", at=MAR_10 + timedelta(days=1)
        ),
        "member_text_11": charge(alpha.workspace, alpha.member, 25_000, at=MAR_10 + timedelta(days=1, hours=3)),
        "admin_text_13": charge(alpha.workspace, alpha.admin, 5_000, model="gpt-4o", at=MAR_10 + timedelta(days=3)),
        "beta": charge(beta.workspace, beta.member, 99_000, model="beta-model", at=MAR_10),
    }
    hold(alpha.workspace, alpha.owner, 1_000)
    credits_release(reservation=hold(alpha.workspace, alpha.owner, 2_000))
    return rows


def test_usage_is_the_workspaces_settled_charges_newest_first(alpha, usage):
    qs = usage_queryset(workspace=alpha.workspace, filters=UsageFilters())

    assert list(qs) == [
        usage["admin_text_13"],
        usage["member_text_11"],
        usage["member_image_11"],
        usage["owner_text_10"],
    ]
    assert all(r.status == Reservation.Status.SETTLED for r in qs)


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (UsageFilters(start=date(2025, 3, 11)), {"member_image_11", "member_text_11", "admin_text_13"}),
        (UsageFilters(end=date(2025, 3, 11)), {"owner_text_10", "member_image_11", "member_text_11"}),
        (UsageFilters(start=date(2025, 3, 11), end=date(2025, 3, 11)), {"member_image_11", "member_text_11"}),
        (UsageFilters(start=date(2025, 3, 12), end=date(2025, 3, 12)), set()),
        (UsageFilters(service="image"), {"member_image_11"}),
        (UsageFilters(model="gpt-4o-mini"), {"owner_text_10", "member_text_11"}),
        (UsageFilters(model="beta-model"), set()),
        (UsageFilters(service="text", model="gpt-4o"), {"admin_text_13"}),
        (UsageFilters(start=date(2025, 3, 11), service="text"), {"member_text_11", "admin_text_13"}),
    ],
)
def test_usage_filters(alpha, usage, filters, expected):
    qs = usage_queryset(workspace=alpha.workspace, filters=filters)

    assert _ids(qs) == {usage[name].pk for name in expected}


def test_usage_filter_by_member(alpha, beta, usage):
    member = usage_queryset(workspace=alpha.workspace, filters=UsageFilters(user_id=alpha.member.pk))
    foreign = usage_queryset(workspace=alpha.workspace, filters=UsageFilters(user_id=beta.member.pk))

    assert _ids(member) == {usage["member_image_11"].pk, usage["member_text_11"].pk}
    assert _ids(foreign) == set()


def test_usage_days_are_days_in_the_users_time_zone(alpha):
    fund(alpha.workspace)
    late = charge(alpha.workspace, alpha.owner, 10_000, at=datetime(2025, 3, 10, 20, 0, tzinfo=UTC))

    with timezone.override("Asia/Tokyo"):  # 2025-03-11 05:00 there
        on_11th = usage_queryset(workspace=alpha.workspace, filters=UsageFilters(start=date(2025, 3, 11)))
        on_10th = usage_queryset(workspace=alpha.workspace, filters=UsageFilters(end=date(2025, 3, 10)))
        days = usage_totals_by_day(on_11th)

    assert list(on_11th) == [late]
    assert list(on_10th) == []
    assert [d["day"] for d in days] == [date(2025, 3, 11)]


def test_totals_by_day_and_by_model(alpha, usage):
    qs = usage_queryset(workspace=alpha.workspace, filters=UsageFilters())

    assert usage_totals_by_day(qs) == [
        {"day": date(2025, 3, 10), "units": 10_000, "calls": 1},
        {"day": date(2025, 3, 11), "units": 65_000, "calls": 2},
        {"day": date(2025, 3, 13), "units": 5_000, "calls": 1},
    ]
    assert usage_totals_by_model(qs) == [
        {"service": "image", "model": "dall-e-3", "units": 40_000, "calls": 1},
        {"service": "text", "model": "gpt-4o-mini", "units": 35_000, "calls": 2},
        {"service": "text", "model": "gpt-4o", "units": 5_000, "calls": 1},
    ]
    assert usage_total_units(qs) == 80_000


def test_totals_follow_the_filters(alpha, usage):
    qs = usage_queryset(workspace=alpha.workspace, filters=UsageFilters(user_id=alpha.member.pk))

    assert [(d["day"], d["units"]) for d in usage_totals_by_day(qs)] == [(date(2025, 3, 11), 65_000)]
    assert usage_total_units(qs) == 65_000


def test_totals_count_the_charge_not_the_hold(alpha):
    fund(alpha.workspace)
    charge(alpha.workspace, alpha.owner, 3_000, hold=50_000, at=MAR_10)

    qs = usage_queryset(workspace=alpha.workspace, filters=UsageFilters())

    assert usage_total_units(qs) == 3_000


def test_filter_choices_are_the_workspaces_own(alpha, beta, usage):
    choices = usage_filter_choices(workspace=alpha.workspace)

    assert choices == {"models": ["dall-e-3", "gpt-4o", "gpt-4o-mini"], "services": ["image", "text"]}


def test_member_choices_are_the_current_members(alpha, beta):
    choices = usage_member_choices(workspace=alpha.workspace)

    assert {pk for pk, _ in choices} == {alpha.owner.pk, alpha.admin.pk, alpha.member.pk}
    assert all("beta" not in label for _, label in choices)


def test_usage_summary_is_short_and_flat():
    assert usage_summary({"input_tokens": 1200, "output_tokens": 30}) == "1,200 input tokens · 30 output tokens"
    assert usage_summary({"sizes": {"1024": 2}}) == 'sizes {"1024": 2}'
    assert usage_summary({}) == ""
    assert usage_summary(None) == ""
    assert len(usage_summary({"k": "x" * 500})) == 120


def test_usage_summary_is_in_words_not_flags():
    chat = {
        "input_tokens": 12,
        "output_tokens": 1,
        "cached_input_tokens": 0,
        "reported": True,
        "outcome": "ok",
        "response_cache": False,
    }

    # Was "input tokens 12 · output tokens 1 · cached input tokens 0 · reported True · outcome ok ·
    # response cache False".
    assert usage_summary(chat) == "Completed · 12 input tokens · 1 output token"
    assert (
        usage_summary({**chat, "response_cache": True})
        == "Completed · 12 input tokens · 1 output token · Served from cache"
    )
    assert (
        usage_summary({**chat, "reported": False}) == "Completed · 12 input tokens · 1 output token · Usage estimated"
    )
    assert usage_summary({**chat, "cached_input_tokens": 8}).startswith(
        "Completed · 12 input tokens · 8 cached input tokens"
    )
    assert usage_summary({**chat, "outcome": "stopped"}).startswith("Stopped by the user · ")
    assert usage_summary({**chat, "outcome": "client_gone"}).startswith("Cut short: the client disconnected · ")
    assert usage_summary({**chat, "outcome": "something_new"}).startswith("Something new · ")


@pytest.mark.parametrize(
    ("service", "usage", "summary"),
    [
        ("image", {"images": 2}, "2 images"),
        ("speech", {"characters": 1}, "1 character"),
        ("transcription", {"audio_seconds": "61"}, "61 s of audio"),
        ("embeddings", {"input_tokens": 40, "reported": True, "items": 3}, "40 input tokens · 3 inputs"),
        ("voice_clone", {"items": 1}, "1 voice"),
        ("", {"items": 2}, "2 items"),
    ],
)
def test_usage_summary_of_each_service(service, usage, summary):
    assert usage_summary(usage, service=service) == summary


def test_usage_facts_label_each_line_of_the_charge_page():
    facts = usage_facts(
        {"outcome": "ok", "input_tokens": 1500, "output_tokens": 20, "reported": False, "response_cache": True},
        service="text",
    )

    assert [(fact.label, fact.value) for fact in facts] == [
        ("Outcome", "Completed"),
        ("Input tokens", "1,500"),
        ("Output tokens", "20"),
        ("Answer", "Served from the response cache"),
        ("Usage figures", "Estimated: the provider reported none"),
    ]


# ---------------------------------------------------------------------------- chart


def _days(*pairs: tuple[date, int]) -> list[dict]:
    return [{"day": d, "units": u, "calls": 1} for d, u in pairs]


def test_chart_has_one_bar_per_day_scaled_to_the_largest():
    chart = usage_chart(_days((date(2025, 3, 1), 10_000), (date(2025, 3, 2), 40_000), (date(2025, 3, 5), 20_000)))

    assert chart is not None
    assert [b.day for b in chart.bars] == [date(2025, 3, 1), date(2025, 3, 2), date(2025, 3, 5)]
    tallest = max(b.height for b in chart.bars)
    assert [round(b.height / tallest, 3) for b in chart.bars] == [0.25, 1.0, 0.5]
    assert all(b.y + b.height == pytest.approx(chart.baseline) for b in chart.bars)
    # Placed on a time axis: the gap of 3 and 4 March is visible.
    step = chart.bars[1].x - chart.bars[0].x
    assert chart.bars[2].x - chart.bars[1].x == pytest.approx(3 * step)
    assert chart.ticks[-1].units >= 40_000
    assert [label.day for label in chart.labels] == [date(2025, 3, 1), date(2025, 3, 5)]


def test_chart_spans_the_filter_range_unless_it_is_far_away():
    days = _days((date(2025, 3, 10), 1_000))

    near = usage_chart(days, start=date(2025, 3, 1), end=date(2025, 3, 31))
    far = usage_chart(days, start=date(2000, 1, 1), end=date(2025, 3, 10) + timedelta(days=MAX_PADDING_DAYS + 1))

    assert near is not None
    assert far is not None
    assert [label.day for label in near.labels] == [date(2025, 3, 1), date(2025, 3, 31)]
    assert [label.day for label in far.labels] == [date(2025, 3, 10)]
    assert far.bars[0].width > near.bars[0].width


def test_no_chart_without_usage():
    assert usage_chart([]) is None
