"""The audit log in the back office: read-only, filterable, searchable, exportable."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest
from django.http import HttpResponseBase, StreamingHttpResponse
from django.test import Client
from django.utils import timezone

from apps.audit.admin import CSV_FIELDS
from apps.audit.models import AuditEvent
from apps.audit.services import audit_record
from tests.conftest import Team
from tests.factories import UserFactory

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedWSGIResponse as TestResponse

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/audit/auditevent/"


@pytest.fixture
def staff_client(client: Client) -> Client:
    client.force_login(UserFactory.create(email="root@example.com", is_staff=True, is_superuser=True))
    AuditEvent.objects.filter(action="user.login").delete()  # the staff login is not under test
    return client


@pytest.fixture
def events(staff_client: Client, alpha: Team, beta: Team) -> dict[str, AuditEvent]:
    """Three events in two workspaces; the oldest is a month old."""
    rename = audit_record(
        actor=alpha.owner,
        action="workspace.rename",
        target=alpha.workspace,
        workspace=alpha.workspace,
        metadata={"from": "Old", "to": "Alpha"},
    )
    invite = audit_record(actor=alpha.admin, action="member.invite", target=alpha.workspace, workspace=alpha.workspace)
    old = audit_record(actor=beta.owner, action="workspace.rename", target=beta.workspace, workspace=beta.workspace)
    AuditEvent.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=30))
    return {"rename": rename, "invite": invite, "old": old}


def _listed(response: TestResponse) -> set[int]:
    assert response.status_code == 200
    return {event.pk for event in response.context["cl"].result_list}


def _csv_rows(response: HttpResponseBase) -> list[list[str]]:
    assert isinstance(response, StreamingHttpResponse)
    body = response.getvalue().decode()  # joins the streamed chunks
    return list(csv.reader(io.StringIO(body)))


def test_changelist_lists_every_event_for_staff(staff_client, events):
    response = staff_client.get(CHANGELIST)

    assert _listed(response) == {e.pk for e in events.values()}
    assert b"alpha-owner@example.com" in response.content


def test_non_staff_user_cannot_open_the_audit_log(client_for, alpha, events):
    response = client_for(alpha.owner).get(CHANGELIST)

    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_add_page_is_forbidden(staff_client, events):
    assert staff_client.get(f"{CHANGELIST}add/").status_code == 403
    assert staff_client.post(f"{CHANGELIST}add/", {"action": "forged"}).status_code == 403
    assert not AuditEvent.objects.filter(action="forged").exists()


def test_change_page_is_view_only(staff_client, events):
    event = events["rename"]
    url = f"{CHANGELIST}{event.pk}/change/"

    response = staff_client.get(url)

    assert response.status_code == 200
    assert b"workspace.rename" in response.content
    assert b'name="_save"' not in response.content
    assert b'name="_continue"' not in response.content
    assert staff_client.post(url, {"action": "tampered"}).status_code == 403
    event.refresh_from_db()
    assert event.action == "workspace.rename"


def test_delete_is_forbidden(staff_client, events):
    event = events["rename"]
    url = f"{CHANGELIST}{event.pk}/delete/"

    assert staff_client.get(url).status_code == 403
    assert staff_client.post(url, {"post": "yes"}).status_code == 403
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_bulk_delete_action_is_not_offered(staff_client, events):
    response = staff_client.get(CHANGELIST)

    assert b'value="delete_selected"' not in response.content
    assert b'value="export_csv"' in response.content


def test_filters_by_action(staff_client, events):
    response = staff_client.get(CHANGELIST, {"action": "member.invite"})

    assert _listed(response) == {events["invite"].pk}


def test_filters_by_date(staff_client, events):
    # The links of the "Past 7 days" choice: midnight-aligned, time zone aware.
    today = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    since, until = today - timedelta(days=7), today + timedelta(days=1)

    response = staff_client.get(CHANGELIST, {"created_at__gte": str(since), "created_at__lt": str(until)})

    assert _listed(response) == {events["rename"].pk, events["invite"].pk}


def test_filters_by_actor(staff_client, events, alpha):
    response = staff_client.get(CHANGELIST, {"actor__id__exact": alpha.admin.pk})

    assert _listed(response) == {events["invite"].pk}


def test_actor_filter_offers_only_people_who_acted(staff_client, events, alpha):
    response = staff_client.get(CHANGELIST)

    assert f"?actor__id__exact={alpha.admin.pk}".encode() in response.content
    assert f"?actor__id__exact={alpha.member.pk}".encode() not in response.content


def test_filters_by_workspace(staff_client, events, beta):
    response = staff_client.get(CHANGELIST, {"workspace__id__exact": beta.workspace.pk})

    assert _listed(response) == {events["old"].pk}


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ("alpha-admin@example.com", {"invite"}),
        ("Beta", {"old"}),
        ("workspace.rename", {"rename", "old"}),
    ],
)
def test_search_matches_actor_workspace_and_action(staff_client, events, term, expected):
    response = staff_client.get(CHANGELIST, {"q": term})

    assert _listed(response) == {events[name].pk for name in expected}


def test_search_matches_request_id_and_ip(staff_client, alpha, client_for):
    web = client_for(alpha.owner, alpha.workspace)
    web.post("/workspaces/new/", {"name": "From the web"}, HTTP_X_REQUEST_ID="req-search-me-42")
    web_event = AuditEvent.objects.get(request_id="req-search-me-42")
    audit_record(actor=alpha.owner, action="workspace.rename")

    assert _listed(staff_client.get(CHANGELIST, {"q": "req-search-me-42"})) == {web_event.pk}
    assert _listed(staff_client.get(CHANGELIST, {"q": "127.0.0.1"})) == {web_event.pk}


def test_csv_export_across_all_events_has_header_and_one_row_per_event(staff_client, events):
    response = staff_client.post(
        CHANGELIST,
        {"action": "export_csv", "select_across": "1", "index": "0", "_selected_action": [events["rename"].pk]},
    )

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in response["Content-Disposition"]
    header, *rows = _csv_rows(response)
    assert header == CSV_FIELDS
    by_action: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        record = dict(zip(header, row, strict=True))
        by_action.setdefault(record["action"], []).append(record)
    assert len(rows) == 3
    assert len(by_action["workspace.rename"]) == 2
    # Oldest first, timestamps in ISO 8601, metadata as JSON.
    assert rows[0][header.index("target_label")] == "Beta"
    invite = by_action["member.invite"][0]
    assert invite["actor_label"] == "alpha-admin@example.com"
    assert invite["workspace_id"] == str(events["invite"].workspace_id)
    rename = next(r for r in by_action["workspace.rename"] if r["target_label"] == "Alpha")
    assert rename["metadata"] == '{"from": "Old", "to": "Alpha"}'
    assert rename["created_at"] == events["rename"].created_at.isoformat()


def test_csv_export_honours_the_changelist_filter(staff_client, events):
    response = staff_client.post(
        f"{CHANGELIST}?action=workspace.rename",
        {"action": "export_csv", "select_across": "1", "index": "0", "_selected_action": [events["rename"].pk]},
    )

    _, *rows = _csv_rows(response)
    assert sorted(row[CSV_FIELDS.index("target_label")] for row in rows) == ["Alpha", "Beta"]


def test_csv_export_of_selected_events_only(staff_client, events):
    response = staff_client.post(
        CHANGELIST,
        {"action": "export_csv", "select_across": "0", "index": "0", "_selected_action": [events["invite"].pk]},
    )

    _, *rows = _csv_rows(response)
    assert [row[CSV_FIELDS.index("action")] for row in rows] == ["member.invite"]


def test_csv_export_neutralises_spreadsheet_formulas(staff_client, alpha):
    alpha.workspace.name = '=HYPERLINK("http://evil.example","click")'
    event = audit_record(actor=alpha.owner, action="workspace.rename", target=alpha.workspace)

    response = staff_client.post(
        CHANGELIST, {"action": "export_csv", "select_across": "0", "index": "0", "_selected_action": [event.pk]}
    )

    _, row = _csv_rows(response)
    assert row[CSV_FIELDS.index("target_label")] == '\'=HYPERLINK("http://evil.example","click")'


def test_changelist_query_count_does_not_grow_with_events(staff_client, alpha, beta, django_assert_max_num_queries):
    impersonator = UserFactory.create(is_staff=True)
    people = [alpha.owner, alpha.admin, alpha.member, beta.owner, beta.admin]
    AuditEvent.objects.bulk_create(
        AuditEvent(
            actor=people[i % len(people)],
            actor_label=people[i % len(people)].email,
            impersonator=impersonator if i % 3 == 0 else None,
            action=f"test.action{i % 4}",
            target_type="workspaces.workspace",
            target_id=str(i),
            target_label=f"Target {i}",
            workspace=alpha.workspace if i % 2 else beta.workspace,
            ip="10.0.0.1",
        )
        for i in range(200)
    )
    staff_client.get(CHANGELIST)  # first reads of runtime config fill its table

    # Session, user, sidebar and filter choices, count, one page of rows, branding config.
    with django_assert_max_num_queries(21):
        response = staff_client.get(CHANGELIST)

    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == 100
