"""How a message is shown and rated: one server-rendered markup (history, streaming, final),
Markdown with tables and highlighted code with a Copy button, the model and credits of each
answer, thumbs up/down stored with the message (staff see it in the admin), and the composer's
model picker listing only the models of the workspace's plan with their prices."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.urls import reverse

from apps.chat.exceptions import ChatError
from apps.chat.fragments import message_html
from apps.chat.models import Conversation, Message
from apps.chat.services import message_feedback_set
from apps.core.markdown import render_markdown
from apps.credits.rates import rate_card_publish
from apps.generation.models import AIModel
from apps.workspaces.entitlements import Entitlements
from apps.workspaces.exceptions import WorkspacePermissionDenied
from apps.workspaces.services import workspace_entitlements_set
from tests.conftest import Team
from tests.factories import MembershipFactory, UserFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def conversation(alpha: Team, mock_model: AIModel) -> Conversation:
    return Conversation.objects.create(workspace=alpha.workspace, user=alpha.member, model=mock_model)


def _message(conversation: Conversation, role: str, content: str, **fields: Any) -> Message:
    return Message.objects.create(
        workspace=conversation.workspace, conversation=conversation, role=role, content=content, **fields
    )


def _feedback_url(message: Message) -> str:
    return reverse("chat:feedback", args=[message.conversation_id, message.pk])


# ----------------------------------------------------------------------------- rendering


def test_markdown_tables_and_highlighted_code_with_a_copy_button() -> None:
    html = render_markdown("| a | b |\n|---|---|\n| 1 | 2 |\n\n```python\ndef f():\n    return 1\n```\n")
    assert "<table>" in html
    assert "<td>1</td>" in html
    assert '<div class="codehilite"><button type="button" class="chat-code-copy" data-copy-code>' in html
    assert '<span class="k">def</span>' in html  # highlighted by Pygments


def test_model_text_cannot_add_markup_beyond_the_allow_list() -> None:
    html = render_markdown('<button onclick="x()">hi</button> <img src=x onerror=y>')
    assert "<button" not in html
    assert "onclick" not in html
    assert "onerror" not in html


def test_an_answer_shows_its_model_credits_and_actions(conversation: Conversation) -> None:
    answer = _message(
        conversation,
        Message.Role.ASSISTANT,
        "**Done**",
        model_label="mock-chat",
        credits_units=12_345,
        input_tokens=7,
        output_tokens=9,
    )
    html = message_html(answer)
    assert "mock-chat" in html
    assert "1.2345 credits" in " ".join(html.split())  # 12,345 units
    assert "7 tokens in, 9 tokens out" in html
    assert "<strong>Done</strong>" in html
    for action in ("data-copy", "data-regenerate", 'data-feedback="up"', 'data-feedback="down"'):
        assert action in html
    assert f'data-feedback-url="{_feedback_url(answer)}"' in html


def test_a_streaming_answer_is_plain_text_without_actions(conversation: Conversation) -> None:
    answer = _message(conversation, Message.Role.ASSISTANT, "**partial", status=Message.Status.STREAMING)
    html = message_html(answer)
    assert "**partial" in html
    assert "data-copy" not in html
    assert "generating" in html


def test_a_question_can_be_copied_and_edited_not_rated(conversation: Conversation) -> None:
    html = message_html(_message(conversation, Message.Role.USER, "<b>hi</b>"))
    assert "&lt;b&gt;hi&lt;/b&gt;" in html
    assert "data-edit" in html
    assert "data-feedback" not in html


def test_a_stopped_answer_shows_why(conversation: Conversation) -> None:
    answer = _message(
        conversation, Message.Role.ASSISTANT, "part", status=Message.Status.STOPPED, error="It took too long."
    )
    html = message_html(answer)
    assert "stopped" in html
    assert "It took too long." in html


# ----------------------------------------------------------------------------- feedback


def test_rating_an_answer_is_stored_and_returns_its_html(client_for, alpha: Team, conversation: Conversation) -> None:
    answer = _message(conversation, Message.Role.ASSISTANT, "Yes.")
    client = client_for(alpha.member, alpha.workspace)
    response = client.post(_feedback_url(answer), {"value": "up"}, headers={"X-Requested-With": "fetch"})
    assert response.status_code == 200
    assert 'data-feedback="up"' in response.content.decode()
    assert 'aria-pressed="true"' in response.content.decode()
    answer.refresh_from_db()
    assert (answer.feedback, answer.feedback_by, answer.feedback_at is not None) == ("up", alpha.member, True)

    response = client.post(_feedback_url(answer), {"value": "down"})  # a plain form goes back
    assert response.status_code == 302
    answer.refresh_from_db()
    assert answer.feedback == "down"

    client.post(_feedback_url(answer), {"value": ""})
    answer.refresh_from_db()
    assert (answer.feedback, answer.feedback_by, answer.feedback_at) == ("", None, None)


@pytest.mark.parametrize(
    ("role", "status", "value"),
    [
        (Message.Role.ASSISTANT, Message.Status.COMPLETE, "sideways"),
        (Message.Role.USER, Message.Status.COMPLETE, "up"),
        (Message.Role.ASSISTANT, Message.Status.STREAMING, "up"),
    ],
)
def test_bad_ratings_answer_400_and_change_nothing(
    client_for, alpha: Team, conversation: Conversation, role: str, status: str, value: str
) -> None:
    message = _message(conversation, role, "text", status=status)
    response = client_for(alpha.member, alpha.workspace).post(_feedback_url(message), {"value": value})
    assert response.status_code == 400
    message.refresh_from_db()
    assert message.feedback == ""


def test_the_service_refuses_a_non_member(alpha: Team, outsider: Any, conversation: Conversation) -> None:
    answer = _message(conversation, Message.Role.ASSISTANT, "Yes.")
    with pytest.raises(WorkspacePermissionDenied):
        message_feedback_set(message=answer, value="up", acting_user=outsider)
    with pytest.raises(ChatError):
        message_feedback_set(message=answer, value="meh", acting_user=alpha.member)


@pytest.mark.outsider("chat:feedback")
@pytest.mark.parametrize("who", ["anonymous", "outsider", "beta_member"])
def test_other_people_cannot_rate_alphas_answers(
    client, client_for, alpha: Team, beta: Team, outsider: Any, conversation: Conversation, who: str
) -> None:
    answer = _message(conversation, Message.Role.ASSISTANT, "Secret")
    if who == "anonymous":
        response = client.post(_feedback_url(answer), {"value": "down"})
        assert response.status_code == 302
        assert reverse("account_login") in response["Location"]
    else:
        if who == "outsider":
            own = WorkspaceFactory.create(name="Outsider's")
            MembershipFactory.create(workspace=own, user=outsider, role="owner")
            other = client_for(outsider, own)
        else:
            other = client_for(beta.member, beta.workspace)
        assert other.post(_feedback_url(answer), {"value": "down"}).status_code == 404
        # Not through another conversation's URL either.
        theirs = Conversation.objects.create(workspace=beta.workspace, user=beta.member)
        url = reverse("chat:feedback", args=[theirs.pk, answer.pk])
        assert client_for(beta.member, beta.workspace).post(url, {"value": "down"}).status_code == 404
    answer.refresh_from_db()
    assert answer.feedback == ""


def test_staff_see_the_ratings_in_the_admin(client, conversation: Conversation) -> None:
    _message(conversation, Message.Role.ASSISTANT, "Liked answer", feedback="up")
    _message(conversation, Message.Role.ASSISTANT, "Disliked answer", feedback="down")
    client.force_login(UserFactory.create(email="root@example.com", is_staff=True, is_superuser=True))
    response = client.get(reverse("admin:chat_message_changelist"), {"feedback__exact": "down"})
    assert response.status_code == 200
    assert [m.content for m in response.context["cl"].result_list] == ["Disliked answer"]
    assert "Not helpful" in response.content.decode()
    inline = client.get(reverse("admin:chat_conversation_change", args=[conversation.pk]))
    assert inline.status_code == 200
    assert "Helpful" in inline.content.decode()


# ----------------------------------------------------------------------------- the composer


def test_the_picker_lists_the_plans_models_with_their_prices(
    client_for, alpha: Team, conversation: Conversation, mock_model: AIModel, rates: None
) -> None:
    extra = AIModel.objects.create(
        model_id="mock-pro", display_name="Mock pro", provider=mock_model.provider, upstream_model="mock-pro"
    )
    extra.plans = ["pro"]
    extra.save()
    rate_card_publish(
        service="text", model="mock-chat", acting_user=None, input_per_1k=Decimal("0.5"), output_per_1k=Decimal("1.5")
    )
    workspace_entitlements_set(workspace=alpha.workspace, entitlements=Entitlements(plan_code="free", plan_name="Free"))
    response = client_for(alpha.member, alpha.workspace).get(reverse("chat:detail", args=[conversation.pk]))
    body = response.content.decode()
    choices = response.context["model_choices"]
    assert [c.model.model_id for c in choices] == ["mock-chat"]
    assert choices[0].price == "0.5 in / 1.5 out per 1K tokens"
    assert "0.5 in / 1.5 out per 1K tokens" in body
    assert "Mock pro" not in body
    assert "css/chat.css" in body


def test_a_model_the_plan_dropped_is_shown_but_not_offered(
    client_for, alpha: Team, conversation: Conversation, mock_model: AIModel
) -> None:
    mock_model.plans = ["pro"]
    mock_model.save()
    workspace_entitlements_set(workspace=alpha.workspace, entitlements=Entitlements(plan_code="free", plan_name="Free"))
    response = client_for(alpha.member, alpha.workspace).get(reverse("chat:detail", args=[conversation.pk]))
    assert response.context["model_unavailable"] is True
    assert "not included in your plan" in response.content.decode()
