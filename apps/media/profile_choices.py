"""Choices of profile preferences offered from the model catalog (`apps.accounts.preferences`).

The "Default model" of a profile is one of the catalog's chat models. Registered here because
this app may read the catalog (`apps.generation`) and accounts may not; the catalog's own app is
its natural home if it grows a `profile_choices` module."""

from __future__ import annotations

from apps.accounts.preferences import DEFAULT_MODEL, Choices, register


@register(DEFAULT_MODEL)
def chat_model_choices() -> Choices:
    """The chat models people can use today, in picker order: enabled, on an enabled provider
    that is configured. Plans are not applied: a person may belong to workspaces on different
    plans, and each chat still offers only what its workspace's plan allows."""
    from apps.generation.models import AIModel

    models = AIModel.objects.available().filter(supports_chat=True).select_related("provider")
    return [
        (model.model_id, f"{model.display_name} ({model.model_id})")
        for model in models.order_by("position", "display_name")
        if model.provider.is_configured
    ]
