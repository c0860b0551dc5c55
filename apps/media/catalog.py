"""Image models of the default catalog (added by this app's data migration; idempotent)."""

from __future__ import annotations

from typing import Any

ALL_SIZES = ["256x256", "512x512", "1024x1024", "1792x1024", "1024x1792"]

# model_id, display name, provider name, upstream model, image options
DEFAULT_IMAGE_MODELS: list[tuple[str, str, str, str, dict[str, Any]]] = [
    (
        "mock-image",
        "Mock images",
        "Mock (offline)",
        "mock-image",
        {
            "sizes": ALL_SIZES,
            "qualities": ["standard", "hd"],
            "styles": ["vivid", "natural"],
            "max_n": 4,
            "negative_prompt": True,
        },
    ),
    (
        "dall-e-3",
        "DALL·E 3",
        "OpenAI",
        "dall-e-3",
        {
            "sizes": ["1024x1024", "1792x1024", "1024x1792"],
            "qualities": ["standard", "hd"],
            "styles": ["vivid", "natural"],
            "max_n": 1,
            "negative_prompt": False,
        },
    ),
    (
        "dall-e-2",
        "DALL·E 2",
        "OpenAI",
        "dall-e-2",
        {
            "sizes": ["256x256", "512x512", "1024x1024"],
            "qualities": ["standard"],
            "styles": [],
            "max_n": 4,
            "negative_prompt": False,
        },
    ),
]


def image_catalog_seed(provider_model: Any, model_model: Any) -> None:
    """Add the image models whose provider exists; models already present are left as staff
    set them. Takes the model classes so a data migration can pass historical ones."""
    rows = [(*row[:4], {"supports_images": True, "image_options": row[4]}) for row in DEFAULT_IMAGE_MODELS]
    _seed(provider_model, model_model, rows, 60)


# model_id, display name, provider name, upstream model, capability flag
DEFAULT_AUDIO_MODELS: list[tuple[str, str, str, str, str]] = [
    ("mock-tts", "Mock speech", "Mock (offline)", "mock-tts", "supports_speech"),
    ("mock-whisper", "Mock transcription", "Mock (offline)", "mock-whisper", "supports_transcription"),
    ("tts-1", "OpenAI TTS", "OpenAI", "tts-1", "supports_speech"),
    ("tts-1-hd", "OpenAI TTS HD", "OpenAI", "tts-1-hd", "supports_speech"),
    ("whisper-1", "Whisper", "OpenAI", "whisper-1", "supports_transcription"),
]

# Voice cloning models (added by migration 0005_voice_catalog).
DEFAULT_VOICE_MODELS: list[tuple[str, str, str, str, str]] = [
    ("mock-voice", "Mock voice cloning", "Mock (offline)", "mock-voice", "supports_voice_cloning"),
]


def audio_catalog_seed(provider_model: Any, model_model: Any) -> None:
    """Add the speech and transcription models whose provider exists (idempotent; models
    already present are left as staff set them)."""
    _seed(provider_model, model_model, [(*row[:4], {row[4]: True}) for row in DEFAULT_AUDIO_MODELS], 70)


def voice_catalog_seed(provider_model: Any, model_model: Any) -> None:
    """Add the voice cloning models whose provider exists (idempotent)."""
    _seed(provider_model, model_model, [(*row[:4], {row[4]: True}) for row in DEFAULT_VOICE_MODELS], 80)


def _seed(provider_model: Any, model_model: Any, rows: list[tuple[Any, ...]], base: int) -> None:
    """Add each (model id, display name, provider name, upstream model, capability fields) row
    whose provider exists, at positions from `base`; a model already present is left alone."""
    for position, (model_id, display, provider_name, upstream, capability) in enumerate(rows):
        provider = provider_model.objects.filter(name=provider_name).first()
        if provider is None:
            continue
        model_model.objects.get_or_create(
            model_id=model_id,
            defaults={
                "display_name": display,
                "provider": provider,
                "upstream_model": upstream,
                "supports_chat": False,
                **capability,
                "position": base + position,
            },
        )
