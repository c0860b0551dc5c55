"""Default model catalog: the built-in mock provider (enabled, offline) and the common hosted
models (their providers start disabled until a key or base URL is configured)."""

from __future__ import annotations

from typing import Any

DEFAULT_PROVIDERS: list[dict[str, Any]] = [
    {"name": "Mock (offline)", "kind": "mock", "enabled": True, "options": {"latency_ms": 30}},
    {"name": "OpenAI", "kind": "openai", "enabled": False},
    {"name": "Anthropic", "kind": "anthropic", "enabled": False},
    {"name": "Google Gemini", "kind": "gemini", "enabled": False},
    {"name": "Mistral", "kind": "mistral", "enabled": False},
    {"name": "Ollama (local)", "kind": "ollama", "enabled": False, "base_url": "http://127.0.0.1:11434"},
]

# model_id, display name, provider name, upstream model, extra fields
DEFAULT_MODELS: list[tuple[str, str, str, str, dict[str, Any]]] = [
    (
        "mock-chat",
        "Mock chat",
        "Mock (offline)",
        "mock-chat",
        {"position": 1, "context_window": 32000, "supports_vision": True},
    ),
    (
        "mock-embed",
        "Mock embeddings",
        "Mock (offline)",
        "mock-embed",
        {"position": 90, "supports_chat": False, "supports_embeddings": True},
    ),
    (
        "gpt-4o-mini",
        "GPT-4o mini",
        "OpenAI",
        "gpt-4o-mini",
        {
            "position": 10,
            "context_window": 128000,
            "max_output_tokens": 16384,
            "supports_vision": True,
            "supports_tools": True,
        },
    ),
    (
        "gpt-4o",
        "GPT-4o",
        "OpenAI",
        "gpt-4o",
        {
            "position": 11,
            "context_window": 128000,
            "max_output_tokens": 16384,
            "supports_vision": True,
            "supports_tools": True,
        },
    ),
    (
        "claude-3-5-haiku",
        "Claude 3.5 Haiku",
        "Anthropic",
        "claude-3-5-haiku-latest",
        {"position": 20, "context_window": 200000, "max_output_tokens": 8192, "supports_tools": True},
    ),
    (
        "claude-sonnet-4",
        "Claude Sonnet 4",
        "Anthropic",
        "claude-sonnet-4-20250514",
        {
            "position": 21,
            "context_window": 200000,
            "max_output_tokens": 8192,
            "supports_vision": True,
            "supports_tools": True,
        },
    ),
    (
        "gemini-2.0-flash",
        "Gemini 2.0 Flash",
        "Google Gemini",
        "gemini-2.0-flash",
        {"position": 30, "context_window": 1000000, "max_output_tokens": 8192, "supports_vision": True},
    ),
    ("mistral-small", "Mistral Small", "Mistral", "mistral-small-latest", {"position": 40, "context_window": 32000}),
    ("llama3.1", "Llama 3.1 (Ollama)", "Ollama (local)", "llama3.1", {"position": 50, "context_window": 128000}),
]

DEFAULT_FALLBACKS: dict[str, list[str]] = {
    "gpt-4o": ["claude-sonnet-4", "gpt-4o-mini"],
    "gpt-4o-mini": ["claude-3-5-haiku", "gemini-2.0-flash"],
    "claude-sonnet-4": ["gpt-4o"],
    "claude-3-5-haiku": ["gpt-4o-mini"],
}


def catalog_seed_defaults(provider_model: Any, model_model: Any, fallback_model: Any) -> None:
    """Idempotent: creates only the rows that are missing (one query per table when none is,
    so it is cheap to run again); takes the model classes so the data migration can pass
    historical ones."""
    provider_names = [spec["name"] for spec in DEFAULT_PROVIDERS]
    providers = {p.name: p for p in provider_model.objects.filter(name__in=provider_names)}
    for spec in DEFAULT_PROVIDERS:
        spec = dict(spec)
        name = spec.pop("name")
        if name not in providers:
            providers[name], _ = provider_model.objects.get_or_create(name=name, defaults=spec)
    model_ids = [row[0] for row in DEFAULT_MODELS]
    models = {m.model_id: m for m in model_model.objects.filter(model_id__in=model_ids)}
    for model_id, display, provider_name, upstream, extra in DEFAULT_MODELS:
        if model_id not in models:
            models[model_id], _ = model_model.objects.get_or_create(
                model_id=model_id,
                defaults={
                    "display_name": display,
                    "provider": providers[provider_name],
                    "upstream_model": upstream,
                    **extra,
                },
            )
    existing = set(
        fallback_model.objects.filter(model__in=list(models.values())).values_list("model_id", "fallback_id")
    )
    for model_id, chain in DEFAULT_FALLBACKS.items():
        for position, fallback_id in enumerate(chain):
            if (models[model_id].pk, models[fallback_id].pk) not in existing:
                fallback_model.objects.get_or_create(
                    model=models[model_id], fallback=models[fallback_id], defaults={"position": position}
                )
