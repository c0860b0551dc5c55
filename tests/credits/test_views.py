"""The credits pages: balance by source, usage history (filters, pagination, totals, chart,
CSV export), the settings page and its permissions, and tenant isolation for every URL."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from django.db import connection
from django.http import HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from apps.accounts.models import User
from apps.audit.models import AuditEvent
from apps.credits import urls
from apps.credits.models import CreditAccount, Reservation, Source
from apps.credits.services import credits_account_open
from apps.workspaces import services as workspace_services
from tests.conftest import ClientFor, Team
from tests.credits.usage_data import charge, fund, hold

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedWSGIResponse as TestResponse

pytestmark = pytest.mark.django_db

MAR_10 = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
OVERVIEW = "credits:overview"
EXPORT = "credits:usage_export"
SETTINGS = "credits:settings"


def _get(client: Client, name: str = OVERVIEW, **params: Any) -> TestResponse:
    return client.get(reverse(name), params)


def _shown_ids(response: TestResponse) -> set[int]:
    return {row.charge.pk for row in response.context["rows"]}


def _csv(response: HttpResponseBase) -> list[list[str]]:
    assert isinstance(response, StreamingHttpResponse)
    body = response.getvalue().decode()
    return list(csv.reader(io.StringIO(body)))


@pytest.fixture
def usage(alpha: Team, beta: Team) -> dict[str, Reservation]:
    """Alpha: four charges over three days; a call still in flight. Beta: a charge with a
    model name that must never appear anywhere alpha looks."""
    fund(alpha.workspace)
    fund(beta.workspace)
    rows = {
        "owner_text_10": charge(alpha.workspace, alpha.owner, 10_000, at=MAR_10),
        "member_image_11": charge(
            alpha.workspace, alpha.member, 40_000, service="image", model="dall-e-3", at=MAR_10 + timedelta(days=1)
        ),
        "member_text_11": charge(alpha.workspace, alpha.member, 25_000, at=MAR_10 + timedelta(days=1, hours=3)),
        "admin_text_13": charge(alpha.workspace, alpha.admin, 5_000, model="gpt-4o", at=MAR_10 + timedelta(days=3)),
        "beta": charge(beta.workspace, beta.member, 99_000, model="beta-secret-model", at=MAR_10),
    }
    hold(alpha.workspace, alpha.owner, 1_000, model="in-flight-model")
    return rows


# ---------------------------------------------------------------------------- access


@pytest.mark.parametrize("name", [OVERVIEW, EXPORT, SETTINGS])
def test_anonymous_is_sent_to_log_in(client, name):
    response = client.get(reverse(name))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))


def test_anonymous_is_sent_to_log_in_from_a_charge(client, usage):
    response = client.get(reverse("credits:usage_detail", args=[usage["owner_text_10"].pk]))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))


@pytest.mark.parametrize("who", ["owner", "admin", "member"])
def test_every_member_sees_the_credits_page(client_for, alpha, who):
    response = _get(client_for(getattr(alpha, who), alpha.workspace))

    assert response.status_code == 200
    assert ("Caps, alerts and top-up settings" in response.content.decode()) == (who != "member")


# ---------------------------------------------------------------------------- balance


def test_page_shows_balance_by_source_and_expiry(client_for, alpha):
    now = timezone.now()
    fund(alpha.workspace, "50", source=Source.TRIAL, expires_at=now + timedelta(days=14))
    fund(alpha.workspace, "100", source=Source.SUBSCRIPTION, expires_at=now + timedelta(days=30))
    fund(alpha.workspace, "200.5", source=Source.PURCHASED)
    hold(alpha.workspace, alpha.member, 20_000)  # 2 credits from the trial grant

    response = _get(client_for(alpha.member, alpha.workspace))
    html = response.content.decode()

    assert response.status_code == 200
    available = re.search(r'data-testid="available">([^<]+)<', html)
    held = re.search(r'data-testid="held">([^<]+)<', html)
    assert available is not None
    assert held is not None
    assert (available.group(1), held.group(1)) == ("348.5", "2")
    sources = re.findall(
        r'<tr data-source="(\w+)">\s*<td>[^<]+</td>\s*<td class="num">([^<]+)</td>\s*<td class="num">([^<]+)</td>', html
    )
    assert sources == [("trial", "48", "2"), ("subscription", "100", "0"), ("purchased", "200.5", "0")]
    trial_end = timezone.localtime(now + timedelta(days=14)).strftime("%Y-%m-%d")
    renewal = timezone.localtime(now + timedelta(days=30)).strftime("%Y-%m-%d")
    assert re.search(rf'data-testid="trial-expiry">Trial credits expire on <strong>{trial_end}', html)
    assert re.search(rf'data-testid="subscription-expiry">Subscription credits reset on <strong>{renewal}', html)
    assert len(re.findall(r"<tr data-grant=", html)) == 3


def test_page_without_credits_or_usage_shows_empty_states(client_for, alpha):
    response = _get(client_for(alpha.owner, alpha.workspace))
    html = response.content.decode()

    assert response.status_code == 200
    assert 'data-testid="no-credits"' in html
    assert "No usage yet" in html
    assert 'data-testid="usage-chart"' not in html
    assert 'data-testid="export-link"' not in html


# ---------------------------------------------------------------------------- usage history


def test_usage_lists_settled_charges_newest_first(client_for, alpha, usage):
    response = _get(client_for(alpha.member, alpha.workspace))

    assert [row.charge for row in response.context["rows"]] == [
        usage["admin_text_13"],
        usage["member_text_11"],
        usage["member_image_11"],
        usage["owner_text_10"],
    ]
    html = response.content.decode()
    assert "in-flight-model" not in html  # a hold is not usage
    assert "100 input tokens · 20 output tokens" in html


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"start": "2025-03-11"}, {"member_image_11", "member_text_11", "admin_text_13"}),
        ({"end": "2025-03-11"}, {"owner_text_10", "member_image_11", "member_text_11"}),
        ({"start": "2025-03-11", "end": "2025-03-11"}, {"member_image_11", "member_text_11"}),
        ({"service": "image"}, {"member_image_11"}),
        ({"model": "gpt-4o-mini"}, {"owner_text_10", "member_text_11"}),
        ({"service": "text", "model": "gpt-4o"}, {"admin_text_13"}),
        ({"start": "", "end": "", "service": "", "model": "", "member": ""}, None),
    ],
)
def test_each_usage_filter_narrows_the_list(client_for, alpha, usage, params, expected):
    response = _get(client_for(alpha.owner, alpha.workspace), **params)

    assert response.status_code == 200
    names = expected if expected is not None else {n for n in usage if n != "beta"}
    assert _shown_ids(response) == {usage[n].pk for n in names}


def test_member_filter_shows_one_members_usage(client_for, alpha, usage):
    response = _get(client_for(alpha.owner, alpha.workspace), member=alpha.member.pk)

    assert response.status_code == 200
    assert _shown_ids(response) == {usage["member_image_11"].pk, usage["member_text_11"].pk}
    assert response.context["total_units"] == 65_000


def test_filter_without_matches_says_so(client_for, alpha, usage):
    response = _get(client_for(alpha.owner, alpha.workspace), start="2025-03-12", end="2025-03-12")

    assert response.status_code == 200
    assert "No usage matches these filters." in response.content.decode()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"start": "yesterday"}, "Enter the start date as YYYY-MM-DD."),
        ({"end": "2025-02-30"}, "Enter the end date as YYYY-MM-DD."),
        ({"start": "2025-03-12", "end": "2025-03-11"}, "The start date is after the end date."),
        ({"end": "9999-12-31"}, "Pick a date between"),
        ({"start": "0001-01-01"}, "Pick a date between"),
        ({"service": "mining"}, "Unknown service"),
        ({"model": "beta-secret-model"}, "This workspace has no usage of model"),
        ({"member": "not-a-number"}, "That member is not in this workspace."),
        ({"member": "999999"}, "That member is not in this workspace."),
    ],
)
def test_invalid_filters_answer_400_with_a_reason(client_for, alpha, usage, params, message):
    client = client_for(alpha.owner, alpha.workspace)

    page = _get(client, **params)
    export = _get(client, EXPORT, **params)

    assert page.status_code == 400
    assert message in page.content.decode()
    assert "rows" not in page.context
    assert export.status_code == 400
    assert message in export.content.decode()


def test_member_of_another_workspace_is_not_a_valid_filter(client_for, alpha, beta, usage):
    client = client_for(alpha.owner, alpha.workspace)

    page = _get(client, member=beta.member.pk)
    export = _get(client, EXPORT, member=beta.member.pk)

    assert page.status_code == export.status_code == 400
    assert "That member is not in this workspace." in page.content.decode()
    assert "beta-secret-model" not in page.content.decode() + export.content.decode()


def test_usage_is_paginated_by_50(client_for, alpha):
    fund(alpha.workspace)
    charges = [charge(alpha.workspace, alpha.member, 100 + i, at=MAR_10 + timedelta(minutes=i)) for i in range(60)]
    client = client_for(alpha.owner, alpha.workspace)

    first = _get(client)
    second = _get(client, page=2)
    junk = _get(client, page="junk")
    beyond = _get(client, page=99)

    newest_first = [c.pk for c in reversed(charges)]
    assert [r.charge.pk for r in first.context["rows"]] == newest_first[:50]
    assert [r.charge.pk for r in second.context["rows"]] == newest_first[50:]
    assert [r.charge.pk for r in junk.context["rows"]] == newest_first[:50]
    assert [r.charge.pk for r in beyond.context["rows"]] == newest_first[50:]
    assert 'rel="next"' in first.content.decode()
    assert 'rel="prev"' in second.content.decode()
    assert 'rel="next"' not in second.content.decode()
    # Totals cover the whole filtered range, not the page.
    assert second.context["total_units"] == sum(100 + i for i in range(60))


def test_pagination_links_keep_the_filters(client_for, alpha):
    fund(alpha.workspace)
    for i in range(51):
        charge(alpha.workspace, alpha.member, 100, model="gpt-4o", at=MAR_10 + timedelta(minutes=i))
    charge(alpha.workspace, alpha.member, 100, model="other", at=MAR_10)

    response = _get(client_for(alpha.owner, alpha.workspace), model="gpt-4o", start="2025-03-10")

    html = response.content.decode()
    assert 'href="?model=gpt-4o&amp;start=2025-03-10&amp;page=2"' in html
    second = _get(client_for(alpha.owner, alpha.workspace), model="gpt-4o", start="2025-03-10", page=2)
    assert len(second.context["rows"]) == 1


def test_totals_by_day_and_by_model(client_for, alpha, usage):
    response = _get(client_for(alpha.owner, alpha.workspace))

    assert [(str(d["day"]), d["units"], d["calls"]) for d in response.context["by_day"]] == [
        ("2025-03-10", 10_000, 1),
        ("2025-03-11", 65_000, 2),
        ("2025-03-13", 5_000, 1),
    ]
    assert [(m["model"], m["units"], m["calls"]) for m in response.context["by_model"]] == [
        ("dall-e-3", 40_000, 1),
        ("gpt-4o-mini", 35_000, 2),
        ("gpt-4o", 5_000, 1),
    ]
    html = response.content.decode()
    assert re.search(r"<td>2025-03-11</td>\s*<td class=\"num\">2</td>\s*<td class=\"num\">6.5</td>", html)
    assert re.search(
        r"<td>gpt-4o-mini</td>\s*<td>Text / chat</td>\s*<td class=\"num\">2</td>\s*<td class=\"num\">3.5</td>", html
    )
    assert re.search(r"<strong>8</strong> credits over 4 charges", html)


def test_totals_follow_the_filters(client_for, alpha, usage):
    response = _get(client_for(alpha.owner, alpha.workspace), service="text")

    assert [m["model"] for m in response.context["by_model"]] == ["gpt-4o-mini", "gpt-4o"]
    assert response.context["total_units"] == 40_000


def test_chart_has_one_bar_per_day(client_for, alpha, usage):
    response = _get(client_for(alpha.owner, alpha.workspace))
    html = response.content.decode()

    assert 'data-testid="usage-chart"' in html
    assert "<svg" in html
    assert "<script" not in html.split('data-testid="usage-chart"')[1].split("</figure>")[0]
    assert re.findall(r'<rect class="bar" data-day="([\d-]+)"', html) == ["2025-03-10", "2025-03-11", "2025-03-13"]
    heights = [float(h) for h in re.findall(r'<rect class="bar"[^>]* height="([\d.]+)"', html)]
    assert heights[1] == max(heights)
    assert heights[0] / heights[1] == pytest.approx(10 / 65, rel=1e-3)


def test_chart_follows_the_filters(client_for, alpha, usage):
    response = _get(client_for(alpha.owner, alpha.workspace), member=alpha.admin.pk)

    assert re.findall(r'<rect class="bar" data-day="([\d-]+)"', response.content.decode()) == ["2025-03-13"]


# ---------------------------------------------------------------------------- a charge


def test_charge_page_shows_what_was_used(client_for, alpha):
    fund(alpha.workspace)
    item = charge(alpha.workspace, alpha.member, 12_345, usage={"input_tokens": 1500, "images": {"1024": 1}})

    response = client_for(alpha.member, alpha.workspace).get(reverse("credits:usage_detail", args=[item.pk]))

    html = response.content.decode()
    assert response.status_code == 200
    assert "1.2345 credits" in html
    detail = html.split('data-testid="usage-detail"')[1].split("</table>")[0]
    assert re.search(r"<th scope=\"row\">Input tokens</th>\s*<td>1,500</td>", detail)
    assert "input_tokens" not in detail
    assert "alpha-member@example.com" in html


CHAT_USAGE = {
    "input_tokens": 12,
    "output_tokens": 40,
    "cached_input_tokens": 0,
    "reported": True,
    "outcome": "ok",
    "response_cache": False,
}


def test_usage_rows_say_how_a_chat_ended_in_words(client_for, alpha):
    fund(alpha.workspace)
    charge(alpha.workspace, alpha.member, 100, usage=CHAT_USAGE)
    charge(alpha.workspace, alpha.member, 50, usage={**CHAT_USAGE, "response_cache": True, "reported": False})

    html = _get(client_for(alpha.member, alpha.workspace)).content.decode()

    table = html.split('data-testid="usage"')[1].split("</table>")[0]
    assert "Completed · 12 input tokens · 40 output tokens</small>" in table
    assert "Completed · 12 input tokens · 40 output tokens · Served from cache · Usage estimated" in table
    for flag in ("reported True", "outcome ok", "response cache False", "cached input tokens 0"):
        assert flag not in table


def test_charge_page_lists_the_usage_in_words(client_for, alpha):
    fund(alpha.workspace)
    item = charge(alpha.workspace, alpha.member, 100, usage=CHAT_USAGE)

    html = (
        client_for(alpha.member, alpha.workspace).get(reverse("credits:usage_detail", args=[item.pk])).content.decode()
    )

    detail = html.split('data-testid="usage-detail"')[1].split("</table>")[0]
    rows = re.findall(r'<th scope="row">([^<]*)</th>\s*<td>([^<]*)</td>', detail)
    assert rows == [("Outcome", "Completed"), ("Input tokens", "12"), ("Output tokens", "40")]


def test_a_hold_is_not_a_charge_page(client_for, alpha):
    fund(alpha.workspace)
    open_hold = hold(alpha.workspace, alpha.member, 1_000)

    response = client_for(alpha.owner, alpha.workspace).get(reverse("credits:usage_detail", args=[open_hold.pk]))

    assert response.status_code == 404


# ---------------------------------------------------------------------------- CSV export


def test_csv_export_has_a_header_and_the_filtered_rows(client_for, alpha, usage):
    response = _get(client_for(alpha.member, alpha.workspace), EXPORT, start="2025-03-11", service="text")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="usage-')
    assert response.streaming
    rows = _csv(response)
    assert rows[0] == [
        "id",
        "created_at",
        "settled_at",
        "service",
        "model",
        "member_email",
        "member_name",
        "credits",
        "shortfall_credits",
        "rate_card_version",
        "usage",
    ]
    assert [r[0] for r in rows[1:]] == [str(usage["admin_text_13"].pk), str(usage["member_text_11"].pk)]
    admin_row = rows[1]
    assert admin_row[1] == "2025-03-13T12:00:00+00:00"
    assert datetime.fromisoformat(admin_row[2]) >= datetime.fromisoformat(admin_row[1])
    assert admin_row[3:8] == ["text", "gpt-4o", "alpha-admin@example.com", alpha.admin.name, "0.5000"]
    assert admin_row[8] == "0.0000"
    assert admin_row[10] == '{"input_tokens": 100, "output_tokens": 20}'


def test_csv_export_without_filters_has_every_charge_of_the_workspace_only(client_for, alpha, usage):
    rows = _csv(_get(client_for(alpha.owner, alpha.workspace), EXPORT))

    assert {r[0] for r in rows[1:]} == {str(usage[n].pk) for n in usage if n != "beta"}
    assert "beta-secret-model" not in str(rows)
    assert "in-flight-model" not in str(rows)


def test_csv_timestamps_are_in_the_users_time_zone(client_for, alpha, usage):
    alpha.owner.timezone = "Asia/Tokyo"
    alpha.owner.save(update_fields=["timezone"])

    rows = _csv(_get(client_for(alpha.owner, alpha.workspace), EXPORT, end="2025-03-10"))

    assert [r[1] for r in rows[1:]] == ["2025-03-10T21:00:00+09:00"]


def test_csv_cells_cannot_become_spreadsheet_formulas(client_for, alpha):
    fund(alpha.workspace)
    alpha.member.display_name = '=HYPERLINK("http://evil.example","x")'
    alpha.member.save(update_fields=["display_name"])
    charge(alpha.workspace, alpha.member, 100, model="+SUM(A1)", at=MAR_10)
    charge(alpha.workspace, alpha.member, 100, model="@cmd", at=MAR_10 + timedelta(minutes=1))
    charge(alpha.workspace, alpha.member, 100, model="-2+3", at=MAR_10 + timedelta(minutes=2))
    charge(alpha.workspace, alpha.member, 100, model="\tTAB", at=MAR_10 + timedelta(minutes=3))

    rows = _csv(_get(client_for(alpha.owner, alpha.workspace), EXPORT))

    assert [r[4] for r in rows[1:]] == ["'\tTAB", "'-2+3", "'@cmd", "'+SUM(A1)"]
    assert {r[6] for r in rows[1:]} == {'\'=HYPERLINK("http://evil.example","x")'}
    for row in rows:
        assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in row)


def test_csv_export_of_an_empty_range_is_just_the_header(client_for, alpha, usage):
    rows = _csv(_get(client_for(alpha.owner, alpha.workspace), EXPORT, start="2030-01-01"))

    assert len(rows) == 1


# ---------------------------------------------------------------------------- query count

# session 1, user 1, allauth user-session tracking 5, constance branding 1, membership 1,
# switcher 1; the page: account 1, grants 1, filter choices 1, members 1, count 1, rows 1,
# totals by day 1, by model 1.
MAX_QUERIES = 20


def _count(client: Client) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert _get(client).status_code == 200
    return len(ctx.captured_queries)


def _charges(team: Team, n: int) -> None:
    users = [team.owner, team.admin, team.member]
    for i in range(n):
        charge(
            team.workspace,
            users[i % 3],
            100 + i,
            model=f"model-{i % 4}",
            at=MAR_10 + timedelta(hours=5 * i),
        )


def test_usage_page_query_count_is_pinned(client_for, alpha, django_assert_max_num_queries):
    fund(alpha.workspace)
    _charges(alpha, 60)
    client = client_for(alpha.owner, alpha.workspace)
    _get(client)  # warm the constance cache

    with django_assert_max_num_queries(MAX_QUERIES):
        response = _get(client)

    assert len(response.context["rows"]) == 50


def test_usage_page_query_count_does_not_grow_with_rows(client_for, alpha):
    fund(alpha.workspace)
    _charges(alpha, 10)
    client = client_for(alpha.owner, alpha.workspace)
    _get(client)
    small = _count(client)

    _charges(alpha, 50)

    assert _count(client) == small


# ---------------------------------------------------------------------------- settings


def _limits(**overrides: str) -> dict[str, str]:
    data = {
        "section": "limits",
        "daily_cap": "100",
        "monthly_cap": "2000.5",
        "member_daily_cap": "",
        "member_monthly_cap": "500",
        "alert_thresholds": "10, 100, 25.5",
    }
    data.update(overrides)
    return data


def _settings_state(team: Team) -> tuple[Any, ...]:
    account = CreditAccount.objects.get(workspace=team.workspace)
    return (
        account.daily_cap_units,
        account.monthly_cap_units,
        account.member_daily_cap_units,
        account.member_monthly_cap_units,
        account.alert_thresholds,
    )


def _audits(team: Team) -> int:
    return AuditEvent.objects.filter(action="credits.settings_update", workspace=team.workspace).count()


@pytest.fixture
def accounts(alpha: Team, beta: Team) -> None:
    credits_account_open(workspace=alpha.workspace)
    credits_account_open(workspace=beta.workspace)


def test_member_may_not_open_or_change_settings(client_for, alpha, accounts):
    client = client_for(alpha.member, alpha.workspace)
    before = _settings_state(alpha)

    assert client.get(reverse(SETTINGS)).status_code == 403
    assert client.post(reverse(SETTINGS), _limits()).status_code == 403
    assert _settings_state(alpha) == before
    assert _audits(alpha) == 0


def test_admin_changes_caps_and_alerts_with_an_audit_row(client_for, alpha, accounts):
    client = client_for(alpha.admin, alpha.workspace)

    page = client.get(reverse(SETTINGS))
    response = client.post(reverse(SETTINGS), _limits())

    assert page.status_code == 200
    assert 'name="daily_cap"' in page.content.decode()
    # Automatic top-up is billing's: the page links to it.
    assert f'href="{reverse("billing:topup")}"' in page.content.decode()
    assert response.status_code == 302
    assert _settings_state(alpha) == (1_000_000, 20_005_000, None, 5_000_000, [1_000_000, 255_000, 100_000])
    event = AuditEvent.objects.get(action="credits.settings_update", workspace=alpha.workspace)
    assert event.actor == alpha.admin
    assert event.metadata["changes"]["daily_cap_units"] == {"from": None, "to": 1_000_000}
    shown = client.get(reverse(SETTINGS)).content.decode()
    assert 'value="2000.5"' in shown
    assert 'value="100, 25.5, 10"' in shown


def test_clearing_a_cap_removes_it(client_for, alpha, accounts):
    client = client_for(alpha.owner, alpha.workspace)
    client.post(reverse(SETTINGS), _limits())

    client.post(reverse(SETTINGS), _limits(daily_cap="", alert_thresholds=""))

    assert _settings_state(alpha)[0] is None
    assert _settings_state(alpha)[4] == []


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_limits(daily_cap="-5"), "Give an amount greater than zero"),
        (_limits(daily_cap="0"), "Give an amount greater than zero"),
        (_limits(monthly_cap="lots"), "Enter a number."),
        (_limits(member_daily_cap="1.00001"), "Use at most 4 decimal places."),
        (_limits(daily_cap="1" * 20), "That amount is too large."),
        (_limits(alert_thresholds="10, abc"), "“abc” is not an amount of credits"),
        (_limits(alert_thresholds="10, -5"), "“-5” is not an amount of credits"),
        (_limits(alert_thresholds="0"), "Alert thresholds must be greater than zero."),
        (_limits(alert_thresholds=", ".join(str(i) for i in range(1, 13))), "Give at most 10 thresholds."),
    ],
)
def test_invalid_settings_answer_400_and_save_nothing(client_for, alpha, accounts, data, message):
    before = _settings_state(alpha)

    response = client_for(alpha.owner, alpha.workspace).post(reverse(SETTINGS), data)

    assert response.status_code == 400
    assert message in response.content.decode()
    assert _settings_state(alpha) == before
    assert _audits(alpha) == 0


def test_unknown_settings_section_is_400(client_for, alpha, accounts):
    before = _settings_state(alpha)

    response = client_for(alpha.owner, alpha.workspace).post(reverse(SETTINGS), {"section": "everything"})

    assert response.status_code == 400
    assert _settings_state(alpha) == before


def test_settings_page_opens_an_account_for_a_workspace_without_one(client_for, alpha):
    response = client_for(alpha.owner, alpha.workspace).get(reverse(SETTINGS))

    assert response.status_code == 200
    assert CreditAccount.objects.filter(workspace=alpha.workspace).exists()


# ---------------------------------------------------------------------------- isolation


@dataclass
class Scene:
    alpha: Team
    usage: dict[str, Reservation]
    intruder: User
    client: Client


def _shows_nothing_of_alpha(response: HttpResponseBase, *, echoed: tuple[str, ...] = ()) -> None:
    """No alpha member or model in the body (`echoed`: what the request itself sent,
    which the page may repeat in its error message)."""
    if isinstance(response, StreamingHttpResponse):
        text = response.getvalue()
    else:
        assert isinstance(response, HttpResponse)
        text = response.content
    html = text.decode()
    for secret in ("alpha-owner@", "alpha-admin@", "alpha-member@", "dall-e-3", "gpt-4o"):
        if secret not in echoed:
            assert secret not in html


def case_overview(scene: Scene) -> None:
    response = scene.client.get(reverse(OVERVIEW))
    assert response.status_code == 200
    assert all(row.charge.workspace_id != scene.alpha.workspace.pk for row in response.context["rows"])
    _shows_nothing_of_alpha(response)
    for params in ({"member": scene.alpha.member.pk}, {"model": "dall-e-3"}):
        filtered = scene.client.get(reverse(OVERVIEW), params)
        assert filtered.status_code == 400
        assert "rows" not in filtered.context
        _shows_nothing_of_alpha(filtered, echoed=tuple(str(v) for v in params.values()))


def case_usage_detail(scene: Scene) -> None:
    for item in scene.usage.values():
        if item.workspace_id == scene.alpha.workspace.pk:
            response = scene.client.get(reverse("credits:usage_detail", args=[item.pk]))
            assert response.status_code == 404
            _shows_nothing_of_alpha(response)


def case_usage_export(scene: Scene) -> None:
    response = scene.client.get(reverse(EXPORT))
    assert response.status_code == 200
    _shows_nothing_of_alpha(response)
    filtered = scene.client.get(reverse(EXPORT), {"member": scene.alpha.member.pk})
    assert filtered.status_code == 400


def case_settings(scene: Scene) -> None:
    before = _settings_state(scene.alpha)
    page = scene.client.get(reverse(SETTINGS))
    assert page.status_code in (200, 403)
    posted = scene.client.post(reverse(SETTINGS), _limits(daily_cap="1"))
    assert posted.status_code in (302, 403)
    assert _settings_state(scene.alpha) == before


CASES: dict[str, Callable[[Scene], None]] = {
    "overview": case_overview,
    "usage_detail": case_usage_detail,
    "usage_export": case_usage_export,
    "settings": case_settings,
}


def test_every_credits_url_has_a_case():
    assert {p.name for p in urls.urlpatterns} == set(CASES)


@pytest.fixture
def scene_for(
    alpha: Team, beta: Team, outsider: User, usage: dict[str, Reservation], accounts: None, client_for: ClientFor
) -> Callable[[str], Scene]:
    def make(who: str) -> Scene:
        if who == "outsider":
            intruder, workspace = outsider, workspace_services.workspace_create_personal(user=outsider)
        else:
            intruder, workspace = getattr(beta, who.removeprefix("beta_")), beta.workspace
        return Scene(alpha, usage, intruder, client_for(intruder, workspace))

    return make


@pytest.mark.outsider(*(f"credits:{name}" for name in CASES))
@pytest.mark.parametrize("who", ["outsider", "beta_owner", "beta_admin", "beta_member"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_intruder_never_sees_or_changes_alpha(scene_for, name, who):
    scene = scene_for(who)

    CASES[name](scene)


def test_alpha_never_sees_betas_usage(client_for, alpha, beta, usage):
    client = client_for(alpha.owner, alpha.workspace)

    page = _get(client)
    export = _get(client, EXPORT)
    detail = client.get(reverse("credits:usage_detail", args=[usage["beta"].pk]))

    assert "beta-secret-model" not in page.content.decode()
    assert usage["beta"].pk not in _shown_ids(page)
    assert isinstance(export, StreamingHttpResponse)
    assert "beta-secret-model" not in export.getvalue().decode()
    assert detail.status_code == 404


def test_own_charge_page_still_works_for_beta(client_for, beta, usage):
    # Guards the 404s above: the same URL answers for the charge's own workspace.
    response = client_for(beta.member, beta.workspace).get(reverse("credits:usage_detail", args=[usage["beta"].pk]))

    assert response.status_code == 200
    assert "beta-secret-model" in response.content.decode()


def test_user_without_a_workspace_is_sent_to_create_one(client_for, outsider, usage):
    client = client_for(outsider)

    for url in (reverse(OVERVIEW), reverse("credits:usage_detail", args=[usage["owner_text_10"].pk])):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"] == reverse("workspaces:create")
