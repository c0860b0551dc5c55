from __future__ import annotations

import math
import time
from typing import Any

import pytest

from apps.generation.tokens import count_message_tokens, count_tokens, load_litellm

TEXT = "The quick brown fox jumps over the lazy dog. Ünïcödé and emoji 🚀 too."


def test_counts_tokens_with_the_models_bundled_tokenizer() -> None:
    assert count_tokens("gpt-4o", "hello world") == 2
    # gpt-4o uses o200k, older models cl100k: the model picks the tokenizer.
    assert count_tokens("gpt-4o", TEXT) != count_tokens("gpt-3.5-turbo", TEXT)


def test_counting_is_fast_once_loaded() -> None:
    count_tokens("gpt-4o", "warm up")
    count_tokens("claude-sonnet-4-5", "warm up")
    started = time.perf_counter()
    for model in ("gpt-4o", "gpt-4o-mini", "claude-sonnet-4-5", "gemini-2.5-flash", "mistral-large-latest"):
        assert count_tokens(model, TEXT) > 0
    assert time.perf_counter() - started < 1.0


def test_strips_litellm_provider_prefixes() -> None:
    assert count_tokens("openai/gpt-4o", TEXT) == count_tokens("gpt-4o", TEXT)
    assert count_tokens("ollama_chat/llama3.1", TEXT) == count_tokens("llama3.1", TEXT)


def test_empty_text_has_no_tokens() -> None:
    assert count_tokens("gpt-4o", "") == 0
    assert count_message_tokens("gpt-4o", []) == 0


@pytest.fixture
def hugging_face_downloads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record (and refuse) every attempt to fetch a tokenizer from the Hugging Face hub."""
    load_litellm()
    from litellm.rust_bridge import tokenizer as dispatch

    calls: list[str] = []

    def refuse(identifier: str, *args: object, **kwargs: object) -> None:
        calls.append(identifier)
        raise RuntimeError("no downloads in tests")

    monkeypatch.setattr(dispatch, "from_pretrained", refuse)
    return calls


@pytest.mark.parametrize("model", ["llama-3.1-70b-instruct", "meta-llama-2-13b"])
def test_never_downloads_a_tokenizer(model: str, hugging_face_downloads: list[str]) -> None:
    # litellm would fetch these models' tokenizers from the hub; we count with the bundled encoding.
    assert count_tokens(model, TEXT) == count_tokens("some-unknown-model", TEXT)
    assert count_message_tokens(model, [{"role": "user", "content": TEXT}]) > 0
    assert hugging_face_downloads == []


def test_message_count_includes_the_chat_format_overhead() -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": TEXT}]
    content_only = count_tokens("gpt-4o", "Be brief.") + count_tokens("gpt-4o", TEXT)
    assert count_message_tokens("gpt-4o", messages) > content_only


def test_image_parts_are_counted_without_fetching_the_image(monkeypatch: pytest.MonkeyPatch) -> None:
    # litellm measures a "high" detail image by downloading it, unless told not to.
    load_litellm()
    from litellm.litellm_core_utils import token_counter

    fetched: list[str] = []

    def record(client: object, url: str, *args: object, **kwargs: object) -> None:
        fetched.append(url)
        raise OSError("no downloads in tests")

    monkeypatch.setattr(token_counter, "safe_get", record)
    image = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "high"}}
    message = {"role": "user", "content": [{"type": "text", "text": "What is this?"}, image]}

    assert count_message_tokens("gpt-4o", [message]) > count_tokens("gpt-4o", "What is this?") + 100
    assert fetched == []


def test_falls_back_to_a_character_estimate_without_a_tokenizer(monkeypatch: pytest.MonkeyPatch) -> None:
    litellm = load_litellm()

    def broken(**kwargs: object) -> int:
        raise OSError("tokenizer files missing")

    monkeypatch.setattr(litellm, "token_counter", broken)
    assert count_tokens("gpt-4o", TEXT) == math.ceil(len(TEXT) / 4)
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": TEXT},
        {"role": "user", "content": [{"type": "text", "text": "abcd"}]},
    ]
    assert count_message_tokens("gpt-4o", messages) == math.ceil(len(TEXT) / 4) + 4 + 1 + 4
