"""Offline token counting, and the one place that imports and configures litellm.

litellm ships tokenizer files (tiktoken encodings, Anthropic's JSON tokenizer), so counting works
without network access. Two of its defaults would reach for the internet, and both are switched
off in `load_litellm()`: the model cost map download at import time, and Hugging Face tokenizer
downloads for model names that contain "llama-2"/"llama-3" or Cohere's "command-r" (those fall
back to tiktoken). Image parts are counted with litellm's default size instead of fetching the
image. When the tokenizer is unavailable anyway, a character estimate (len / 4) is used: the
caller needs *a* count to settle a charge, and an estimate beats a failed settlement.

Importing litellm costs ~5 s and ~190 MB, so it happens on first use, never at Django start-up.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, Mapping
from types import ModuleType
from typing import Any

logger = logging.getLogger(__name__)

# litellm routing prefixes we may see in front of an upstream model name; the tokenizer is chosen
# from the bare name ("openai/gpt-4o" would otherwise get the generic encoding, not gpt-4o's).
_PROVIDER_PREFIXES = ("openai/", "anthropic/", "gemini/", "mistral/", "ollama/", "ollama_chat/")

# Rough per-message overhead of chat formats (role markers), used by the estimate only.
_ESTIMATED_TOKENS_PER_MESSAGE = 4


def load_litellm() -> ModuleType:
    """Import litellm configured for offline, quiet, library use. Cheap after the first call."""
    # Must be set before the first import: otherwise litellm fetches the cost map from the
    # internet at import time and retries for seconds when the network is unreachable.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True  # no "Provider List: ..." banners on stdout
    litellm.disable_hf_tokenizer_download = True  # never download tokenizers at run time
    return litellm


def _tokenizer_model(model: str) -> str:
    for prefix in _PROVIDER_PREFIXES:
        if model.startswith(prefix):
            return model[len(prefix) :]
    return model


def estimate_tokens(text: str) -> int:
    """Character-based estimate (about four characters per token for English text)."""
    return math.ceil(len(text) / 4)


def count_tokens(model: str, text: str) -> int:
    """Tokens of `text` for `model` (an upstream model name, with or without a litellm prefix)."""
    if not text:
        return 0
    try:
        litellm = load_litellm()
        return int(litellm.token_counter(model=_tokenizer_model(model), text=text))
    except Exception:
        logger.warning("tokenizer unavailable for %r; estimating from characters", model, exc_info=True)
        return estimate_tokens(text)


def _message_text(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, Iterable):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, Mapping))
    return ""


def count_message_tokens(model: str, messages: list[dict[str, Any]]) -> int:
    """Prompt tokens of chat `messages` (OpenAI format), including the chat format's overhead."""
    if not messages:
        return 0
    try:
        litellm = load_litellm()
        return int(
            litellm.token_counter(
                model=_tokenizer_model(model),
                messages=messages,
                # Otherwise litellm downloads each image to measure it.
                use_default_image_token_count=True,
            )
        )
    except Exception:
        logger.warning("tokenizer unavailable for %r; estimating from characters", model, exc_info=True)
        return sum(estimate_tokens(_message_text(m)) + _ESTIMATED_TOKENS_PER_MESSAGE for m in messages)
