"""Chat in the browser, over the conversation's WebSocket, with the offline mock provider (it
answers "Echo: <the last user message>", one word per token, `latency_ms` apart).

Messages are found by the `data-role` attribute of their article: the contract between the
page and static/js/chat.js, kept by both the server-rendered and the streamed messages."""

from __future__ import annotations

import io
import re
from typing import TYPE_CHECKING

import pytest
from PIL import Image

from apps.accounts.models import User
from apps.generation.tokens import load_litellm
from tests.e2e import world
from tests.e2e.conftest import E2E_MARKS
from tests.e2e.playwright_api import expect

if TYPE_CHECKING:
    from playwright.sync_api import FilePayload, Locator, Page

    from tests.e2e.conftest import SignedIn

pytestmark = E2E_MARKS

# The first answer of a test process also loads the tokenizer (litellm, seconds).
ANSWER_TIMEOUT_MS = 45_000
LONG = " ".join(f"word{n}" for n in range(1, 41))  # 41 tokens with "Echo:"
STORY = "once upon a time " + " ".join(f"line{n}" for n in range(1, 200)) + " the end"


def echo(text: str) -> str:
    return "Echo: " + text


@pytest.fixture
def chat(signed_in: SignedIn) -> Page:
    """A signed-in member on a new conversation with the mock model, connected."""
    # The tokenizer loads once per process (seconds, longer on a busy machine) and would hold
    # up the first answer's first words: load it before the test starts timing anything.
    load_litellm()
    world.seed_catalog(latency_ms=100)
    alice = world.person("alice@example.com", "Alice")
    page = signed_in(alice.user, alice.workspace)
    page.goto("/chat/")
    page.get_by_test_id("new-chat").get_by_role("button", name="Start chat").click()
    expect(page).to_have_url(re.compile(r"/chat/\d+/$"))
    expect(send_button(page)).to_be_enabled()
    return page


def send_button(page: Page) -> Locator:
    return page.get_by_role("button", name="Send", exact=True)


def answers(page: Page) -> Locator:
    return page.locator("[data-role=assistant]")


def questions(page: Page) -> Locator:
    return page.locator("[data-role=user]")


def said(message: Locator) -> str:
    """The text of a message as shown (its body, without the header and buttons)."""
    return message.locator("[data-body]").inner_text()


def ask(page: Page, text: str) -> None:
    page.get_by_role("textbox", name="Message").fill(text)
    send_button(page).click()


def test_the_answer_streams_in_word_by_word(chat: Page) -> None:
    ask(chat, LONG)

    expect(questions(chat).last).to_contain_text(LONG)
    answer = answers(chat).last
    expect(answer).to_contain_text("Echo: word1", timeout=ANSWER_TIMEOUT_MS)
    # Part of the answer is on screen while the rest is still coming.
    expect(chat.get_by_role("button", name="Stop")).to_be_visible()
    assert len(said(answer)) < len(echo(LONG)), "the whole answer arrived at once"

    expect(answer).to_contain_text(echo(LONG), timeout=ANSWER_TIMEOUT_MS)
    expect(chat.get_by_role("button", name="Stop")).to_be_hidden()
    expect(send_button(chat)).to_be_enabled()
    expect(answers(chat).last.get_by_role("button", name="Regenerate")).to_be_visible()
    # Reloaded, the page shows the stored exchange.
    chat.reload()
    expect(answers(chat).last).to_contain_text(echo(LONG))


def test_stop_keeps_what_was_said_then_regenerate_answers_in_full(chat: Page) -> None:
    # A long fixed answer, slow enough to be stopped early even on a busy machine.
    world.set_mock(latency_ms=100, reply=STORY)
    ask(chat, "Tell me a long story")
    answer = answers(chat).last
    expect(answer).to_contain_text("once upon a time", timeout=ANSWER_TIMEOUT_MS)

    chat.get_by_role("button", name="Stop").click()

    expect(answer).to_contain_text("stopped", timeout=ANSWER_TIMEOUT_MS)
    expect(chat.get_by_role("button", name="Stop")).to_be_hidden()
    stopped_text = said(answer)
    assert "the end" not in stopped_text, "the answer went on after Stop"
    assert stopped_text.startswith("once upon a time")

    world.set_mock(latency_ms=1, reply=STORY)
    answers(chat).last.get_by_role("button", name="Regenerate").click()

    expect(answers(chat).last).to_contain_text(STORY, timeout=ANSWER_TIMEOUT_MS)
    expect(answers(chat).last).not_to_contain_text("stopped")
    expect(answers(chat)).to_have_count(1)
    expect(send_button(chat)).to_be_enabled()


def test_edit_a_question_and_get_a_new_answer(chat: Page) -> None:
    world.set_mock(latency_ms=5)
    ask(chat, "What is the capital of France")
    expect(answers(chat).last).to_contain_text(echo("What is the capital of France"), timeout=ANSWER_TIMEOUT_MS)
    expect(send_button(chat)).to_be_enabled()

    questions(chat).first.get_by_role("button", name="Edit").click()
    chat.get_by_role("textbox", name="Edit message").fill("What is the capital of Portugal")
    chat.get_by_role("button", name=re.compile(r"^Save")).click()

    expect(questions(chat).first).to_contain_text("What is the capital of Portugal")
    expect(answers(chat).last).to_contain_text(echo("What is the capital of Portugal"), timeout=ANSWER_TIMEOUT_MS)
    expect(answers(chat)).to_have_count(1)
    expect(chat.get_by_text(echo("What is the capital of France"))).to_have_count(0)
    # The edit is what the conversation keeps.
    chat.reload()
    expect(questions(chat)).to_have_count(1)
    expect(questions(chat).first).to_contain_text("What is the capital of Portugal")
    expect(answers(chat).last).to_contain_text(echo("What is the capital of Portugal"))


def test_reload_mid_answer_continues_and_completes(chat: Page) -> None:
    ask(chat, LONG)
    expect(answers(chat).last).to_contain_text("Echo: word1 word2", timeout=ANSWER_TIMEOUT_MS)

    chat.reload()

    # The answer went on while the page was away; the page picks it up and sees it to the end.
    expect(answers(chat).last).to_contain_text(echo(LONG), timeout=ANSWER_TIMEOUT_MS)
    expect(answers(chat).last).not_to_contain_text("stopped")
    expect(answers(chat)).to_have_count(1)
    expect(send_button(chat)).to_be_enabled()


def test_a_second_tab_sees_the_answer_live(chat: Page) -> None:
    other = chat.context.new_page()
    other.goto(chat.url)
    expect(send_button(other)).to_be_enabled()

    ask(chat, LONG)

    expect(answers(other).last).to_contain_text("Echo: word1", timeout=ANSWER_TIMEOUT_MS)
    expect(other.get_by_role("button", name="Stop")).to_be_visible()
    assert len(said(answers(other).last)) < len(echo(LONG)), "the other tab got the answer only at the end"
    expect(questions(other).last).to_contain_text(LONG)
    expect(answers(other).last).to_contain_text(echo(LONG), timeout=ANSWER_TIMEOUT_MS)
    expect(answers(chat).last).to_contain_text(echo(LONG))
    expect(answers(other)).to_have_count(1)


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_attach_an_image_for_a_vision_model(chat: Page) -> None:
    """The file is uploaded as soon as it is chosen (a chip with its preview, removable), goes
    to the model as an image part (the mock names each image it is sent) and stays with the
    question after a reload."""
    world.set_mock(latency_ms=5)
    expect(chat.get_by_role("button", name="Attach files")).to_be_visible()  # it opens this chooser
    files: list[FilePayload] = [
        {"name": "red.png", "mimeType": "image/png", "buffer": png()},
        {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"the spare key is under the mat"},
    ]
    chat.get_by_label("Attach files", exact=True).and_(chat.locator("input[type=file]")).set_input_files(files)
    pending = chat.locator("[data-pending-attachments]")
    expect(pending.get_by_role("img", name="red.png")).to_be_visible()
    expect(pending.get_by_text("notes.txt")).to_be_visible()
    pending.get_by_role("button", name="Remove notes.txt").click()
    expect(pending.get_by_text("notes.txt")).to_have_count(0)

    ask(chat, "What colour is this picture")

    answer = echo("What colour is this picture [image/png]")
    expect(answers(chat).last).to_contain_text(answer, timeout=ANSWER_TIMEOUT_MS)
    expect(questions(chat).last.get_by_role("img", name="red.png")).to_be_visible()
    expect(pending.locator("[data-attachment-id]")).to_have_count(0)
    chat.reload()
    expect(questions(chat).last.get_by_role("img", name="red.png")).to_be_visible()
    expect(questions(chat).last.get_by_text("notes.txt")).to_have_count(0)
    # The image is served to its conversation's members.
    source = questions(chat).last.get_by_role("img", name="red.png").get_attribute("src")
    assert source is not None
    response = chat.request.get(source)
    assert response.ok
    assert response.headers["content-type"] == "image/png"


def test_use_a_preset_from_the_composer(chat: Page) -> None:
    """Typing "/" opens the preset picker; the preset's blank is filled in the dialog, checked by
    the server, and its prompt lands in the composer to be sent."""
    world.set_mock(latency_ms=5)
    alice = User.objects.get(email="alice@example.com")
    world.preset(alice, world.personal_workspace(alice), name="Pitch", template="Pitch {{product}} in one line")
    box = chat.get_by_role("textbox", name="Message")
    box.press_sequentially("/")
    dialog = chat.get_by_role("dialog", name="Insert a preset")
    expect(dialog).to_be_visible()
    dialog.get_by_role("searchbox", name="Search presets").fill("pitch")
    dialog.get_by_role("button", name=re.compile("Pitch")).click()
    dialog.get_by_role("button", name="Insert into the message").click()
    expect(dialog.get_by_text("This is required.")).to_be_visible()
    dialog.get_by_role("textbox", name="Product").fill("green tea")
    dialog.get_by_role("button", name="Insert into the message").click()
    expect(dialog).to_be_hidden()
    expect(box).to_have_value("Pitch green tea in one line")
    send_button(chat).click()
    expect(answers(chat).last).to_contain_text(echo("Pitch green tea in one line"), timeout=ANSWER_TIMEOUT_MS)
