"""The account's data export includes the conversations the user started, with their messages, in
every workspace; nobody else's."""

from __future__ import annotations

import pytest

from apps.accounts.models import User
from apps.accounts.services import user_export_data
from apps.chat.models import Conversation, Message
from apps.generation.models import AIModel
from apps.workspaces.services import workspace_create
from tests.conftest import Team

pytestmark = pytest.mark.django_db


def chat(team: Team, user: User, title: str, *lines: tuple[str, str]) -> Conversation:
    conversation = Conversation.objects.create(
        workspace=team.workspace, user=user, title=title, model=AIModel.objects.get(model_id="mock-chat")
    )
    for role, content in lines:
        Message.objects.create(workspace=team.workspace, conversation=conversation, role=role, content=content)
    return conversation


def test_export_has_the_users_conversations_with_their_messages(alpha: Team, beta: Team) -> None:
    mine = chat(alpha, alpha.member, "Rainbows", ("system", "Be brief."), ("user", "why?"), ("assistant", "Light."))
    side = workspace_create(acting_user=alpha.member, name="Side")
    elsewhere = Conversation.objects.create(workspace=side, user=alpha.member, title="Elsewhere")
    chat(alpha, alpha.owner, "The owner's own", ("user", "owner secret"))
    chat(beta, beta.member, "Beta's", ("user", "beta secret"))

    exported = user_export_data(user=alpha.member)["conversations"]

    assert [(c["id"], c["workspace_id"], c["title"]) for c in exported] == [
        (mine.pk, alpha.workspace.pk, "Rainbows"),
        (elsewhere.pk, side.pk, "Elsewhere"),
    ]
    assert exported[0]["model"] == "mock-chat"
    assert [(m["role"], m["content"]) for m in exported[0]["messages"]] == [("user", "why?"), ("assistant", "Light.")]
    assert exported[1]["messages"] == []
    assert "secret" not in str(exported)


def test_export_of_a_user_without_conversations_is_empty(alpha: Team) -> None:
    assert user_export_data(user=alpha.admin)["conversations"] == []
