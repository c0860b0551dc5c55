"""Files with a question: images for models that read them (sent as image parts through the
provider layer, charged as usual) and text files as context. The type is decided by the content,
never by the name; sizes are limited by the site and the plan. Every route is workspace-scoped."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone
from PIL import Image

from apps.chat import services, tasks
from apps.chat.exceptions import ChatStreamError
from apps.chat.export_sections import export_conversations
from apps.chat.models import Attachment, Conversation, Message
from apps.credits.amounts import to_credits
from apps.credits.models import CreditAccount
from apps.credits.services import credits_grant
from apps.generation.models import AIModel, Generation
from apps.workspaces.entitlements import Entitlements
from apps.workspaces.services import workspace_entitlements_set
from tests.conftest import Team
from tests.credits.helpers import assert_ledger_consistent
from tests.factories import MembershipFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db


def png(size: tuple[int, int] = (4, 3)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def conversation(alpha: Team, mock_model: AIModel, rates: None) -> Conversation:
    return Conversation.objects.create(workspace=alpha.workspace, user=alpha.member, model=mock_model)


def attach_url(conversation: Conversation) -> str:
    return reverse("chat:attach", args=[conversation.pk])


def upload(client: Any, conversation: Conversation, name: str, data: bytes) -> Any:
    return client.post(attach_url(conversation), {"file": SimpleUploadedFile(name, data)})


def attach(conversation: Conversation, user: Any, name: str, data: bytes) -> Attachment:
    return services.chat_attachment_create(conversation=conversation, user=user, name=name, file=io.BytesIO(data))


# ----------------------------------------------------------------------------- uploading


def test_an_image_and_a_text_file_are_recognised_by_their_content(
    client_for: Any, alpha: Team, conversation: Conversation
) -> None:
    client = client_for(alpha.member, alpha.workspace)
    image = upload(client, conversation, "notes.txt", png())  # the name says text: it is a PNG
    text = upload(client, conversation, "photo.png", b"# Plan\n\n- one\n- two\n")  # and the other way round
    assert (image.status_code, text.status_code) == (201, 201)
    stored = {a.kind: a for a in Attachment.objects.filter(conversation=conversation)}
    assert stored["image"].content_type == "image/png"
    assert bytes(stored["image"].data) == png()
    assert stored["text"].text == "# Plan\n\n- one\n- two\n"
    assert f'data-attachment-id="{stored["image"].pk}"' in image.content.decode()
    assert "data-remove-attachment" in image.content.decode()
    # Shown again in the composer after a reload, until sent.
    page = client.get(reverse("chat:detail", args=[conversation.pk])).content.decode()
    assert f'data-attachment-id="{stored["text"].pk}"' in page


@pytest.mark.parametrize(
    ("data", "status", "message"),
    [
        (b"\x00\x01\x02binary\x00", 415, "Attach an image"),
        (b"\xff\xfe\x00d\x00a\x00t\x00a", 415, "Attach an image"),  # UTF-16: not UTF-8 text
        (png()[:30], 400, "could not be read"),  # a PNG cut short
        (b"", 400, "empty"),
    ],
)
def test_other_files_are_refused_with_a_clear_message(
    client_for: Any, alpha: Team, conversation: Conversation, data: bytes, status: int, message: str
) -> None:
    response = upload(client_for(alpha.member, alpha.workspace), conversation, "file.png", data)
    assert response.status_code == status
    assert message in response.content.decode()
    assert not Attachment.objects.exists()


def test_the_plans_upload_limit_applies(client_for: Any, alpha: Team, conversation: Conversation) -> None:
    workspace_entitlements_set(
        workspace=alpha.workspace, entitlements=Entitlements(plan_code="free", plan_name="Free", upload_max_bytes=50)
    )
    client = client_for(alpha.member, alpha.workspace)
    response = upload(client, conversation, "big.txt", b"x" * 51)
    assert response.status_code == 413
    assert "Free plan" in response.content.decode()
    assert upload(client, conversation, "small.txt", b"x" * 50).status_code == 201


def test_a_pending_file_can_be_removed_a_sent_one_cannot(
    client_for: Any, alpha: Team, conversation: Conversation
) -> None:
    client = client_for(alpha.member, alpha.workspace)
    pending = attach(conversation, alpha.member, "a.txt", b"alpha")
    sent = attach(conversation, alpha.member, "b.txt", b"beta")
    services.chat_send_prepare(conversation=conversation, user=alpha.member, content="hi", attachment_ids=[sent.pk])
    remove = "chat:attachment_remove"
    response = client.post(reverse(remove, args=[conversation.pk, pending.pk]), headers={"X-Requested-With": "fetch"})
    assert response.status_code == 204
    assert client.post(reverse(remove, args=[conversation.pk, sent.pk])).status_code == 400
    assert list(Attachment.objects.values_list("pk", flat=True)) == [sent.pk]


def test_files_never_sent_are_purged_after_a_week_sent_ones_stay(alpha: Team, conversation: Conversation) -> None:
    old, _recent, sent = (attach(conversation, alpha.member, f"{name}.txt", b"x") for name in ("old", "recent", "sent"))
    services.chat_send_prepare(conversation=conversation, user=alpha.member, content="hi", attachment_ids=[sent.pk])
    week_ago = timezone.now() - timedelta(days=services.UNSENT_ATTACHMENT_DAYS, minutes=1)
    Attachment.objects.filter(pk__in=[old.pk, sent.pk]).update(created_at=week_ago)

    assert tasks.purge_unsent_attachments() == {"attachments": 1}

    assert set(Attachment.objects.values_list("name", flat=True)) == {"recent.txt", "sent.txt"}
    assert tasks.purge_unsent_attachments() == {"attachments": 0}


def test_exports_name_each_messages_files_never_their_bytes(
    alpha: Team, conversation: Conversation, mock_model: AIModel
) -> None:
    image, notes = (
        attach(conversation, alpha.member, "red.png", png()),
        attach(conversation, alpha.member, "n.md", b"x"),
    )
    services.chat_send_prepare(
        conversation=conversation, user=alpha.member, content="look", attachment_ids=[image.pk, notes.pk]
    )
    markdown = services.conversation_export(conversation=conversation, fmt="md").content
    assert f"Attached: red.png (image, {image.size} bytes), n.md (text file, 1 byte)" in markdown
    document = json.loads(services.conversation_export(conversation=conversation, fmt="json").content)
    assert document["messages"][0]["attachments"] == [
        {"name": "red.png", "kind": "image", "content_type": "image/png", "size": image.size},
        {"name": "n.md", "kind": "text", "content_type": "text/plain; charset=utf-8", "size": 1},
    ]
    assert document["messages"][1]["attachments"] == []
    [exported] = export_conversations(alpha.member)
    assert [m["attachments"] for m in exported["messages"]] == [m["attachments"] for m in document["messages"]]


def test_an_image_is_served_inline_and_a_text_file_as_a_download(
    client_for: Any, alpha: Team, conversation: Conversation
) -> None:
    client = client_for(alpha.member, alpha.workspace)
    image = attach(conversation, alpha.member, "red.png", png())
    text = attach(conversation, alpha.member, "<evil>.txt", b"<script>alert(1)</script>")
    response = client.get(reverse("chat:attachment", args=[conversation.pk, image.pk]))
    assert response["Content-Type"] == "image/png"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response.content == png()
    response = client.get(reverse("chat:attachment", args=[conversation.pk, text.pk]))
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response["Content-Disposition"].startswith("attachment;")
    assert "sandbox" in response["Content-Security-Policy"]


@pytest.mark.outsider("chat:attach", "chat:attachment", "chat:attachment_remove")
@pytest.mark.parametrize("who", ["outsider", "beta_member"])
def test_other_people_cannot_reach_alphas_files(
    client_for: Any, alpha: Team, beta: Team, outsider: Any, conversation: Conversation, who: str
) -> None:
    file = attach(conversation, alpha.member, "secret.txt", b"secret")
    if who == "outsider":
        own = WorkspaceFactory.create(name="Outsider's")
        MembershipFactory.create(workspace=own, user=outsider, role="owner")
        client = client_for(outsider, own)
    else:
        client = client_for(beta.member, beta.workspace)
    assert upload(client, conversation, "x.txt", b"x").status_code == 404
    assert client.get(reverse("chat:attachment", args=[conversation.pk, file.pk])).status_code == 404
    assert client.post(reverse("chat:attachment_remove", args=[conversation.pk, file.pk])).status_code == 404
    # Nor through one of their own conversations.
    theirs = Conversation.objects.create(workspace=beta.workspace, user=beta.member)
    beta_client = client_for(beta.member, beta.workspace)
    assert beta_client.get(reverse("chat:attachment", args=[theirs.pk, file.pk])).status_code == 404
    assert list(Attachment.objects.values_list("name", flat=True)) == ["secret.txt"]


# ----------------------------------------------------------------------------- sending


def test_a_vision_model_gets_the_image_as_an_image_part_and_text_files_as_context(
    alpha: Team, conversation: Conversation, mock_model: AIModel
) -> None:
    mock_model.supports_vision = True
    mock_model.save()
    image = attach(conversation, alpha.member, "red.png", png())
    notes = attach(conversation, alpha.member, "notes.md", b"remember the milk")
    turn = services.chat_send_prepare(
        conversation=conversation, user=alpha.member, content="What is this?", attachment_ids=[image.pk, notes.pk]
    )
    content = turn.messages[-1]["content"]
    assert isinstance(content, list)
    assert content[0] == {
        "type": "text",
        "text": 'What is this?\n\n<file name="notes.md">\nremember the milk\n</file>',
    }
    assert content[1]["type"] == "image_url"
    assert content[1]["image_url"]["url"].startswith("data:image/png;base64,iVBOR")
    assert set(Attachment.objects.values_list("message", flat=True)) == {turn.user_message.pk}
    # The question shows its files.
    from apps.chat.fragments import message_html

    html = message_html(turn.user_message)
    assert f'data-attachment-id="{image.pk}"' in html
    assert "data-remove-attachment" not in html


def test_an_image_for_a_model_that_cannot_read_it_is_refused_and_nothing_is_saved(
    alpha: Team, conversation: Conversation, mock_model: AIModel
) -> None:
    mock_model.supports_vision = False
    mock_model.save()
    image = attach(conversation, alpha.member, "red.png", png())
    with pytest.raises(ChatStreamError, match="cannot read images"):
        services.chat_send_prepare(
            conversation=conversation, user=alpha.member, content="look", attachment_ids=[image.pk]
        )
    assert not Message.objects.exists()
    image.refresh_from_db()
    assert image.message_id is None
    conversation.refresh_from_db()
    assert conversation.turn_started_at is None  # the turn lock was given back


def test_another_conversations_file_cannot_be_sent(
    alpha: Team, conversation: Conversation, mock_model: AIModel
) -> None:
    other = Conversation.objects.create(workspace=alpha.workspace, user=alpha.member, model=mock_model)
    file = attach(other, alpha.member, "a.txt", b"a")
    with pytest.raises(ChatStreamError, match="no longer available"):
        services.chat_send_prepare(conversation=conversation, user=alpha.member, content="hi", attachment_ids=[file.pk])


def test_an_earlier_image_is_named_for_a_model_that_cannot_read_it(
    alpha: Team, conversation: Conversation, mock_model: AIModel
) -> None:
    mock_model.supports_vision = True
    mock_model.save()
    image = attach(conversation, alpha.member, "red.png", png())
    message = Message.objects.create(
        workspace=alpha.workspace, conversation=conversation, role=Message.Role.USER, content="Look"
    )
    Attachment.objects.filter(pk=image.pk).update(message=message)
    history = services._history(conversation, None)
    assert history == [{"role": "user", "content": "Look\n\n[image: red.png]"}]


@pytest.mark.django_db(transaction=True)
def test_an_answer_about_an_image_is_charged_once(alpha: Team, conversation: Conversation, mock_model: AIModel) -> None:
    mock_model.supports_vision = True
    mock_model.save()
    credits_grant(workspace=alpha.workspace, amount=to_credits(10_000_000), source="purchased", idempotency_key="f")
    image = attach(conversation, alpha.member, "red.png", png())
    turn = services.chat_send_prepare(
        conversation=conversation, user=alpha.member, content="describe", attachment_ids=[image.pk]
    )
    message = async_to_sync(services.chat_turn_answer)(turn)
    assert message.status == Message.Status.COMPLETE
    assert message.content == "Echo: describe [image/png]"
    generation = Generation.objects.get(reservation__idempotency_key=f"chat:{message.pk}")
    assert generation.outcome == Generation.Outcome.OK
    assert generation.input_tokens > 0
    assert message.credits_units == generation.credits_charged_units > 0
    account = CreditAccount.objects.get(workspace=alpha.workspace)
    assert (account.held_units, account.balance_units) == (0, 10_000_000 - message.credits_units)
    assert_ledger_consistent()
