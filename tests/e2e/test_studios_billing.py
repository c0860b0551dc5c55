"""The studio pages make something with the offline mock provider (an image, speech, a
transcript); billing and pricing render; an API key is shown exactly once."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

from tests.e2e import world
from tests.e2e.conftest import E2E_MARKS
from tests.e2e.playwright_api import expect

if TYPE_CHECKING:
    from playwright.sync_api import FilePayload, Page

    from tests.e2e.conftest import SignedIn

pytestmark = E2E_MARKS

JOB_TIMEOUT_MS = 30_000


@pytest.fixture
def alice(signed_in: SignedIn) -> Page:
    world.seed_catalog()
    person = world.person("alice@example.com", "Alice")
    return signed_in(person.user, person.workspace)


def test_image_studio_makes_an_image(alice: Page) -> None:
    alice.goto("/studio/images/")
    form = alice.get_by_test_id("image-form")
    form.get_by_label("Prompt", exact=True).fill("a lighthouse at dusk")
    form.get_by_label("Size").select_option("256x256")
    form.get_by_role("button", name="Generate").click()

    image = alice.get_by_role("img", name="a lighthouse at dusk")
    expect(image).to_be_visible(timeout=JOB_TIMEOUT_MS)
    expect(alice.get_by_test_id("job")).to_contain_text(re.compile("succeeded", re.IGNORECASE))
    # The picture itself loads (served by the signed download view).
    assert image.evaluate("img => img.complete && img.naturalWidth > 0"), "the image did not load"


def test_speech_studio_makes_audio(alice: Page) -> None:
    alice.goto("/studio/speech/")
    expect(alice.get_by_test_id("no-speech")).to_be_visible()
    form = alice.get_by_test_id("speech-form")
    form.get_by_label("Text").fill("Hello from the speech studio")
    form.get_by_role("button", name="Generate speech").click()

    expect(alice.get_by_test_id("speech-result").first).to_be_visible(timeout=JOB_TIMEOUT_MS)
    expect(alice.get_by_test_id("speech-item").first).to_contain_text("Hello from the speech studio")
    expect(alice.get_by_role("link", name=re.compile("^Download")).first).to_be_visible()


def test_transcription_studio_makes_a_transcript(alice: Page) -> None:
    alice.goto("/studio/transcribe/")
    expect(alice.get_by_test_id("no-transcripts")).to_be_visible()
    form = alice.get_by_test_id("transcription-form")
    talk: FilePayload = {"name": "talk.wav", "mimeType": "audio/wav", "buffer": world.wav_bytes(seconds=2.0)}
    form.get_by_label("Audio file").set_input_files(files=[talk])
    form.get_by_role("button", name="Transcribe").click()

    transcript = alice.get_by_test_id("transcript")
    expect(transcript).to_be_visible(timeout=JOB_TIMEOUT_MS)
    expect(transcript).to_contain_text("mock transcript of 2")
    expect(alice.get_by_role("link", name="SRT").first).to_be_visible()


def test_billing_and_pricing_pages_render(alice: Page) -> None:
    alice.goto("/billing/")
    expect(alice.get_by_role("heading", level=1)).to_contain_text("Billing")
    expect(alice.get_by_text("Professional").first).to_be_visible()

    alice.goto("/billing/pricing/")
    expect(alice.get_by_role("heading", name="Pricing", level=1)).to_be_visible()
    for plan in ("Free", "Starter", "Professional"):
        expect(alice.get_by_role("heading", name=plan, exact=True)).to_be_visible()


def test_pricing_renders_for_visitors(page: Page) -> None:
    world.seed_catalog()
    page.goto("/billing/pricing/")
    expect(page.get_by_role("heading", name="Pricing", level=1)).to_be_visible()
    expect(page.get_by_role("heading", name="Free", exact=True)).to_be_visible()


def test_create_an_api_key_and_see_it_only_once(alice: Page) -> None:
    alice.goto("/api-keys/new/")
    alice.get_by_role("textbox", name=re.compile(r"^Name")).fill("CI bot")
    alice.get_by_label("Chat completions").check()
    alice.get_by_role("button", name="Create key").click()

    expect(alice.get_by_text("Copy this key now: it will not be shown again.")).to_be_visible()
    raw_key = alice.get_by_test_id("raw-key").input_value()
    assert re.fullmatch(r"ak_[A-Za-z0-9_\-]{20,}", raw_key), raw_key

    alice.get_by_role("button", name=re.compile("back to API keys")).click()
    expect(alice.get_by_test_id("keys")).to_contain_text("CI bot")
    assert raw_key not in alice.content(), "the key list shows the secret again"
    alice.reload()
    assert raw_key not in alice.content()
