"""The chat pages: list (search, filters, pagination, query count), a conversation's page,
rename / model switch / settings, delete, export, and tenant isolation (404 for others)."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from decimal import Decimal
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.chat.exceptions import ChatError
from apps.chat.models import Conversation, Message
from apps.chat.services import conversation_create, conversation_update
from apps.generation.models import AIModel
from apps.workspaces.entitlements import Entitlements
from apps.workspaces.services import workspace_entitlements_set
from tests.conftest import Team

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedWSGIResponse as TestResponse

pytestmark = pytest.mark.django_db


@pytest.fixture
def mock_chat() -> AIModel:
    return AIModel.objects.select_related("provider").get(model_id="mock-chat")


@pytest.fixture
def other_model(mock_chat: AIModel) -> AIModel:
    return AIModel.objects.create(
        model_id="mock-small",
        display_name="Mock small",
        provider=mock_chat.provider,
        upstream_model="mock-small",
        max_output_tokens=512,
    )


def make_conversation(team: Team, model: AIModel, title: str = "", **kwargs: Any) -> Conversation:
    return Conversation.objects.create(workspace=team.workspace, user=team.member, model=model, title=title, **kwargs)


def add_message(conversation: Conversation, role: str, content: str, **kwargs: Any) -> Message:
    return Message.objects.create(
        workspace=conversation.workspace, conversation=conversation, role=role, content=content, **kwargs
    )


def detail_url(conversation: Conversation, name: str = "detail") -> str:
    return reverse(f"chat:{name}", args=[conversation.pk])


# ----------------------------------------------------------------------------- list


@pytest.mark.outsider("chat:list", "chat:detail")
def test_anonymous_is_sent_to_login(client, alpha, mock_chat) -> None:
    conversation = make_conversation(alpha, mock_chat, "Secret")
    for url in (reverse("chat:list"), detail_url(conversation)):
        response = client.get(url)
        assert response.status_code == 302
        assert reverse("account_login") in response["Location"]


@pytest.mark.outsider("chat:list")
def test_list_shows_only_this_workspaces_conversations(client_for, alpha, beta, mock_chat) -> None:
    make_conversation(alpha, mock_chat, "Alpha plans")
    make_conversation(beta, mock_chat, "Beta secrets")
    response = client_for(alpha.member, alpha.workspace).get(reverse("chat:list"))
    assert response.status_code == 200
    body = response.content.decode()
    assert "Alpha plans" in body
    assert "Beta secrets" not in body


def test_search_matches_title_or_message_content(client_for, alpha, beta, mock_chat) -> None:
    by_title = make_conversation(alpha, mock_chat, "Pelican facts")
    by_message = make_conversation(alpha, mock_chat, "Birds")
    add_message(by_message, Message.Role.USER, "tell me about the pelican")
    add_message(by_message, Message.Role.ASSISTANT, "A pelican is a bird")  # two matches, one row
    make_conversation(alpha, mock_chat, "Unrelated")
    beta_conv = make_conversation(beta, mock_chat, "Beta pelican")
    client = client_for(alpha.member, alpha.workspace)
    response = client.get(reverse("chat:list"), {"q": "PELICAN"})
    assert response.status_code == 200
    listed = list(response.context["conversations"])
    assert sorted(c.pk for c in listed) == sorted([by_title.pk, by_message.pk])
    assert beta_conv.pk not in [c.pk for c in listed]


def test_filter_by_model_and_date(client_for, alpha, mock_chat, other_model) -> None:
    now = timezone.now()
    recent = make_conversation(alpha, mock_chat, "Recent", updated_at=now)
    old = make_conversation(alpha, mock_chat, "Old", updated_at=now - timedelta(days=40))
    small = make_conversation(alpha, other_model, "Small", updated_at=now)
    client = client_for(alpha.member, alpha.workspace)
    url = reverse("chat:list")

    by_model = client.get(url, {"model": "mock-small"})
    assert [c.pk for c in by_model.context["conversations"]] == [small.pk]

    since = (timezone.localdate() - timedelta(days=7)).isoformat()
    by_date = client.get(url, {"start": since, "model": "mock-chat"})
    assert [c.pk for c in by_date.context["conversations"]] == [recent.pk]

    until = (timezone.localdate() - timedelta(days=30)).isoformat()
    assert [c.pk for c in client.get(url, {"end": until}).context["conversations"]] == [old.pk]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"start": "yesterday"}, "Enter the start date as YYYY-MM-DD."),
        ({"start": "2025-02-01", "end": "2025-01-01"}, "The start date is after the end date."),
        ({"model": "no-such-model"}, "Unknown model"),
    ],
)
def test_bad_filter_answers_400_with_a_clear_message(client_for, alpha, params, message) -> None:
    response = client_for(alpha.member, alpha.workspace).get(reverse("chat:list"), params)
    assert response.status_code == 400
    assert message in response.context["filter_error"]
    assert message in response.content.decode()


def test_list_is_paginated_by_25(client_for, alpha, mock_chat) -> None:
    for i in range(30):
        make_conversation(alpha, mock_chat, f"Chat {i:02}")
    client = client_for(alpha.member, alpha.workspace)
    first = client.get(reverse("chat:list"))
    second = client.get(reverse("chat:list"), {"page": 2})
    assert len(first.context["conversations"]) == 25
    assert len(second.context["conversations"]) == 5
    assert {c.pk for c in first.context["conversations"]}.isdisjoint({c.pk for c in second.context["conversations"]})
    assert 'data-testid="pagination"' in first.content.decode()


def test_list_query_count_is_pinned_and_flat(client_for, alpha, mock_chat, django_assert_max_num_queries) -> None:
    def seed(n: int) -> None:
        for i in range(n):
            conversation = make_conversation(alpha, mock_chat, f"Chat {i}")
            add_message(conversation, Message.Role.USER, "hello")

    client = client_for(alpha.member, alpha.workspace)
    client.get(reverse("chat:list"))  # warm the session and caches
    seed(5)
    with CaptureQueriesContext(connection) as five:
        assert client.get(reverse("chat:list"), {"q": "hello"}).status_code == 200
    seed(25)
    with django_assert_max_num_queries(20):
        response = client.get(reverse("chat:list"), {"q": "hello"})
    assert len(response.context["conversations"]) == 25
    with CaptureQueriesContext(connection) as thirty:
        client.get(reverse("chat:list"), {"q": "hello"})
    assert len(thirty.captured_queries) == len(five.captured_queries)


# ----------------------------------------------------------------------------- create


def test_new_chat_creates_and_redirects(client_for, alpha, mock_chat) -> None:
    response = client_for(alpha.member, alpha.workspace).post(
        reverse("chat:list"), {"model": "mock-chat", "system_prompt": "Be brief."}
    )
    conversation = Conversation.objects.get(workspace=alpha.workspace)
    assert response.status_code == 302
    assert response["Location"] == detail_url(conversation)
    assert conversation.model == mock_chat
    assert conversation.system_prompt == "Be brief."
    assert conversation.user == alpha.member
    assert AuditEvent.objects.filter(action="conversation.create", target_id=str(conversation.pk)).exists()


def test_new_chat_refuses_a_disabled_model(client_for, alpha, mock_chat) -> None:
    mock_chat.enabled = False
    mock_chat.save()
    response = client_for(alpha.member, alpha.workspace).post(reverse("chat:list"), {"model": "mock-chat"})
    assert response.status_code == 400
    assert not Conversation.objects.exists()


def test_the_users_default_model_is_preselected_and_used(client_for, alpha, mock_chat, other_model) -> None:
    from apps.chat.services import chat_default_model

    alpha.member.preferences = {"default_model": "mock-small"}
    alpha.member.save(update_fields=["preferences"])
    response = client_for(alpha.member, alpha.workspace).get(reverse("chat:list"))
    assert response.context["new_form"]["model"].value() == "mock-small"
    assert chat_default_model(alpha.workspace, alpha.member) == other_model
    assert chat_default_model(alpha.workspace) == AIModel.objects.usable_for(alpha.workspace, "chat")[0]

    other_model.enabled = False  # a preference the workspace can no longer use falls back
    other_model.save()
    response = client_for(alpha.member, alpha.workspace).get(reverse("chat:list"))
    assert response.context["new_form"]["model"].value() is None
    assert chat_default_model(alpha.workspace, alpha.member) == mock_chat


def offered(response: TestResponse, form: str) -> list[str]:
    """The model ids of the picker of `form` on the page."""
    return [model.model_id for model in response.context[form].fields["model"].queryset]


def test_models_outside_the_workspaces_plan_are_not_offered_and_are_refused(
    client_for, alpha, mock_chat, other_model
) -> None:
    other_model.plans = ["pro"]
    other_model.save()
    workspace_entitlements_set(workspace=alpha.workspace, entitlements=Entitlements(plan_code="free", plan_name="Free"))
    conversation = make_conversation(alpha, mock_chat)
    client = client_for(alpha.member, alpha.workspace)

    for picker in (
        offered(client.get(reverse("chat:list")), "new_form"),
        offered(client.get(detail_url(conversation)), "model_form"),
    ):
        assert "mock-chat" in picker
        assert "mock-small" not in picker
    assert client.post(reverse("chat:list"), {"model": "mock-small"}).status_code == 400
    assert client.post(detail_url(conversation, "model"), {"model": "mock-small"}).status_code == 400
    with pytest.raises(ChatError, match="not available"):
        conversation_create(workspace=alpha.workspace, user=alpha.member, model=other_model)
    with pytest.raises(ChatError, match="not available"):
        conversation_update(conversation=conversation, acting_user=alpha.member, model=other_model)
    conversation.refresh_from_db()
    assert conversation.model == mock_chat
    assert Conversation.objects.count() == 1

    workspace_entitlements_set(workspace=alpha.workspace, entitlements=Entitlements(plan_code="pro", plan_name="Pro"))
    assert "mock-small" in offered(client.get(reverse("chat:list")), "new_form")
    assert client.post(detail_url(conversation, "model"), {"model": "mock-small"}).status_code == 302


def test_service_refuses_a_non_member(alpha, outsider, mock_chat) -> None:
    from apps.workspaces.exceptions import WorkspacePermissionDenied

    with pytest.raises(WorkspacePermissionDenied):
        conversation_create(workspace=alpha.workspace, user=outsider, model=mock_chat)
    assert not Conversation.objects.exists()


# ----------------------------------------------------------------------------- detail


def test_detail_renders_messages_and_websocket_data(client_for, alpha, mock_chat) -> None:
    conversation = make_conversation(alpha, mock_chat, "Markdown")
    add_message(conversation, Message.Role.USER, "<b>bold?</b> **no**")
    add_message(conversation, Message.Role.ASSISTANT, "Here is **bold**")
    add_message(conversation, Message.Role.ASSISTANT, "partial ans", status=Message.Status.STREAMING)
    body = client_for(alpha.member, alpha.workspace).get(detail_url(conversation)).content.decode()
    assert f'data-conversation-id="{conversation.pk}"' in body
    assert f'data-ws-path="/ws/chat/{conversation.pk}/"' in body
    assert "<strong>bold</strong>" in body  # assistant markdown rendered
    assert "&lt;b&gt;bold?&lt;/b&gt; **no**" in body  # user text escaped, not rendered
    assert "partial ans" in body
    assert 'data-status="streaming"' in body
    assert "js/chat.js" in body


class _FirstMatch(HTMLParser):
    """The first element in document order that carries `attribute` (what `querySelector` finds)."""

    def __init__(self, attribute: str) -> None:
        super().__init__()
        self.attribute = attribute
        self.found: dict[str, str | None] | None = None
        self.tag = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.found is None and any(name == self.attribute for name, _ in attrs):
            self.found, self.tag = dict(attrs), tag


def test_status_line_lookup_does_not_match_a_message(client_for, alpha, mock_chat) -> None:
    """Reopening a conversation with history: chat.js writes "Connecting…"/"Ready" into the
    element its status selector finds first. That must be the status line, never the first
    message (messages carry `data-status` too), or the first message is blanked."""
    conversation = make_conversation(alpha, mock_chat, "History")
    add_message(conversation, Message.Role.USER, "first question")
    add_message(conversation, Message.Role.ASSISTANT, "first answer")
    body = client_for(alpha.member, alpha.workspace).get(detail_url(conversation)).content.decode()
    script = (settings.BASE_DIR / "static" / "js" / "chat.js").read_text()
    selector = re.search(r'statusEl = root\.querySelector\("\[([a-z-]+)\]"\)', script)
    assert selector is not None, "chat.js finds its status line by one attribute"
    finder = _FirstMatch(selector.group(1))
    finder.feed(body)
    assert finder.found is not None
    assert finder.tag == "p"
    assert finder.found.get("role") == "status"


def test_assistant_markdown_is_sanitised(client_for, alpha, mock_chat) -> None:
    conversation = make_conversation(alpha, mock_chat)
    add_message(
        conversation,
        Message.Role.ASSISTANT,
        "Hi <script>alert('x')</script> [click](javascript:alert(1)) <img src=x onerror=alert(2)>",
    )
    body = client_for(alpha.member, alpha.workspace).get(detail_url(conversation)).content.decode()
    rendered = body.split("data-body>", 1)[1].split("</div>", 1)[0]
    assert "<script" not in rendered
    assert "javascript:" not in rendered
    assert "onerror" not in rendered
    assert "<script>alert" not in body
    assert "&lt;script&gt;" in body  # the raw text kept for Copy is escaped


# ----------------------------------------------------------------------------- changes


def test_rename(client_for, alpha, mock_chat) -> None:
    conversation = make_conversation(alpha, mock_chat, "Old")
    response = client_for(alpha.member, alpha.workspace).post(
        detail_url(conversation, "rename"), {"title": "  New   name "}
    )
    assert response.status_code == 302
    conversation.refresh_from_db()
    assert conversation.title == "New name"


def test_switch_model(client_for, alpha, mock_chat, other_model) -> None:
    conversation = make_conversation(alpha, mock_chat)
    client = client_for(alpha.member, alpha.workspace)
    assert client.post(detail_url(conversation, "model"), {"model": "mock-small"}).status_code == 302
    conversation.refresh_from_db()
    assert conversation.model == other_model

    other_model.enabled = False
    other_model.save()
    conversation.model = mock_chat
    conversation.save()
    response = client.post(detail_url(conversation, "model"), {"model": "mock-small"})
    assert response.status_code == 400
    conversation.refresh_from_db()
    assert conversation.model == mock_chat


def test_settings_saved(client_for, alpha, mock_chat) -> None:
    conversation = make_conversation(alpha, mock_chat)
    response = client_for(alpha.member, alpha.workspace).post(
        detail_url(conversation, "settings"),
        {"system_prompt": "Answer in French.", "temperature": "0.7", "max_tokens": "1000"},
    )
    assert response.status_code == 302
    conversation.refresh_from_db()
    assert conversation.system_prompt == "Answer in French."
    assert conversation.temperature == Decimal("0.70")
    assert conversation.max_tokens == 1000


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"temperature": "3", "max_tokens": "100"}, "Temperature must be between 0 and 2."),
        ({"temperature": "-0.5"}, "Temperature must be between 0 and 2."),
        ({"temperature": "1", "max_tokens": "5000"}, "at most 4096 tokens"),
        ({"max_tokens": "0"}, "greater than or equal to 1"),
    ],
)
def test_bad_settings_answer_400_and_save_nothing(client_for, alpha, mock_chat, data, message) -> None:
    conversation = make_conversation(alpha, mock_chat, system_prompt="Keep me")
    response = client_for(alpha.member, alpha.workspace).post(
        detail_url(conversation, "settings"), {"system_prompt": "Changed", **data}
    )
    assert response.status_code == 400
    assert message in response.content.decode()
    conversation.refresh_from_db()
    assert conversation.system_prompt == "Keep me"
    assert conversation.temperature is None
    assert conversation.max_tokens is None


def test_switching_to_a_smaller_model_checks_max_tokens(alpha, mock_chat, other_model) -> None:
    conversation = make_conversation(alpha, mock_chat, max_tokens=2000)
    with pytest.raises(ChatError, match="at most 512 tokens"):
        conversation_update(conversation=conversation, acting_user=alpha.member, model=other_model)
    conversation.refresh_from_db()
    assert conversation.model == mock_chat


def test_delete(client_for, alpha, mock_chat) -> None:
    conversation = make_conversation(alpha, mock_chat)
    add_message(conversation, Message.Role.USER, "bye")
    client = client_for(alpha.member, alpha.workspace)
    assert client.get(detail_url(conversation, "delete")).status_code == 405
    response = client.post(detail_url(conversation, "delete"))
    assert response.status_code == 302
    assert response["Location"] == reverse("chat:list")
    assert not Conversation.objects.filter(pk=conversation.pk).exists()
    assert not Message.objects.filter(conversation_id=conversation.pk).exists()


def test_pin_and_unpin_keep_the_place_in_history(client_for, alpha, mock_chat) -> None:
    conversation = make_conversation(alpha, mock_chat)
    updated = Conversation.objects.get(pk=conversation.pk).updated_at
    client = client_for(alpha.member, alpha.workspace)
    assert client.get(detail_url(conversation, "pin")).status_code == 405

    response = client.post(detail_url(conversation, "pin"), {"pinned": "1"})
    assert response.status_code == 302
    assert response["Location"] == detail_url(conversation)
    conversation.refresh_from_db()
    assert conversation.pinned_at is not None
    assert conversation.updated_at == updated

    response = client.post(detail_url(conversation, "pin"), {"pinned": "0"}, HTTP_HX_REQUEST="true")
    assert (response.status_code, response["HX-Refresh"]) == (204, "true")
    conversation.refresh_from_db()
    assert conversation.pinned_at is None


# ----------------------------------------------------------------------------- export


def test_export_markdown(client_for, alpha, mock_chat) -> None:
    conversation = make_conversation(alpha, mock_chat, "Trip", system_prompt="Be brief.")
    add_message(conversation, Message.Role.USER, "Where to?")
    add_message(conversation, Message.Role.ASSISTANT, "**Lisbon**")
    response = client_for(alpha.member, alpha.workspace).get(detail_url(conversation, "export"), {"format": "md"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/markdown")
    assert response["Content-Disposition"] == f'attachment; filename="conversation-{conversation.pk}.md"'
    text = response.content.decode()
    assert text.startswith("# Trip\n")
    assert "## System\n\nBe brief." in text
    assert text.index("## User\n\nWhere to?") < text.index("## Assistant\n\n**Lisbon**")


def test_export_json(client_for, alpha, mock_chat) -> None:
    conversation = make_conversation(alpha, mock_chat, "Trip", temperature=Decimal("0.5"))
    add_message(conversation, Message.Role.USER, "Where to?")
    add_message(conversation, Message.Role.ASSISTANT, "Lisbon", status=Message.Status.STOPPED)
    response = client_for(alpha.member, alpha.workspace).get(detail_url(conversation, "export"), {"format": "json"})
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="conversation-{conversation.pk}.json"'
    data = json.loads(response.content)
    assert data["title"] == "Trip"
    assert data["model"] == "mock-chat"
    assert data["temperature"] == "0.50"
    assert [(m["role"], m["content"], m["status"]) for m in data["messages"]] == [
        ("user", "Where to?", "complete"),
        ("assistant", "Lisbon", "stopped"),
    ]


def test_export_unknown_format_is_400(client_for, alpha, mock_chat) -> None:
    conversation = make_conversation(alpha, mock_chat)
    response = client_for(alpha.member, alpha.workspace).get(detail_url(conversation, "export"), {"format": "pdf"})
    assert response.status_code == 400


# ----------------------------------------------------------------------------- isolation


@pytest.mark.outsider(
    "chat:detail", "chat:export", "chat:rename", "chat:model", "chat:settings", "chat:pin", "chat:delete"
)
@pytest.mark.parametrize("who", ["outsider", "beta_member"])
def test_other_people_get_404_on_alphas_conversation(client_for, alpha, beta, outsider, mock_chat, who) -> None:
    conversation = make_conversation(alpha, mock_chat, "Alpha only", system_prompt="secret")
    if who == "outsider":
        from tests.factories import MembershipFactory, WorkspaceFactory

        own = WorkspaceFactory.create(name="Outsider's")
        MembershipFactory.create(workspace=own, user=outsider, role="owner")
        client = client_for(outsider, own)
    else:
        client = client_for(beta.member, beta.workspace)
    assert client.get(detail_url(conversation)).status_code == 404
    assert client.get(detail_url(conversation, "export"), {"format": "md"}).status_code == 404
    assert client.get(detail_url(conversation, "export"), {"format": "json"}).status_code == 404
    assert client.post(detail_url(conversation, "rename"), {"title": "pwned"}).status_code == 404
    assert client.post(detail_url(conversation, "model"), {"model": "mock-chat"}).status_code == 404
    assert client.post(detail_url(conversation, "settings"), {"temperature": "1"}).status_code == 404
    assert client.post(detail_url(conversation, "pin"), {"pinned": "1"}).status_code == 404
    assert client.post(detail_url(conversation, "delete")).status_code == 404
    conversation.refresh_from_db()
    assert conversation.pinned_at is None
    assert conversation.title == "Alpha only"
    assert conversation.temperature is None
