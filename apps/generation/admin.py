from __future__ import annotations

from typing import Any, cast

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from apps.accounts.models import User
from apps.audit.services import audit_record
from apps.generation.models import AIModel, Generation, ModelFallback, Provider


class ProviderForm(forms.ModelForm):
    api_key = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Stored encrypted; never shown again. Leave empty to keep the current key "
        "(or to use the provider's environment variable).",
    )
    clear_api_key = forms.BooleanField(required=False, help_text="Remove the stored key.")
    base_url = forms.URLField(
        required=False,
        assume_scheme="https",
        help_text="For Ollama and OpenAI-compatible endpoints, or a proxy.",
    )

    class Meta:
        model = Provider
        fields = ["name", "kind", "base_url", "enabled", "timeout_seconds", "options"]


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin):
    form = ProviderForm
    list_display = ["name", "kind", "enabled", "configured", "api_key_hint", "base_url", "updated_at"]
    list_filter = ["kind", "enabled"]
    search_fields = ["name", "base_url"]
    readonly_fields = ["api_key_hint", "created_at", "updated_at"]

    @admin.display(boolean=True, description="Configured")
    def configured(self, obj: Provider) -> bool:
        return obj.is_configured

    def save_model(self, request: HttpRequest, obj: Provider, form: Any, change: bool) -> None:
        changed = list(form.changed_data)
        if form.cleaned_data.get("clear_api_key"):
            obj.set_api_key("")
        elif form.cleaned_data.get("api_key"):
            obj.set_api_key(form.cleaned_data["api_key"])
        super().save_model(request, obj, form, change)
        # The key itself never reaches the audit log; only that it changed.
        audit_record(
            actor=cast(User, request.user),
            action="generation.provider_change" if change else "generation.provider_create",
            target=obj,
            metadata={
                "fields": sorted(f for f in changed if f != "api_key") + (["api_key"] if "api_key" in changed else [])
            },
        )


class FallbackInline(admin.TabularInline):
    model = ModelFallback
    fk_name = "model"
    extra = 1
    fields = ["position", "fallback"]
    autocomplete_fields = ["fallback"]


@admin.register(AIModel)
class AIModelAdmin(admin.ModelAdmin):
    list_display = [
        "model_id",
        "display_name",
        "provider",
        "upstream_model",
        "enabled",
        "supports_vision",
        "supports_tools",
        "context_window",
        "max_output_tokens",
        "position",
    ]
    list_filter = ["enabled", "provider", "supports_vision", "supports_tools", "supports_embeddings"]
    search_fields = ["model_id", "display_name", "upstream_model"]
    list_select_related = ["provider"]
    list_editable = ["enabled", "position"]
    inlines = [FallbackInline]

    def save_model(self, request: HttpRequest, obj: AIModel, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        audit_record(
            actor=cast(User, request.user),
            action="generation.model_change" if change else "generation.model_create",
            target=obj,
            metadata={"fields": sorted(form.changed_data)},
        )


@admin.register(Generation)
class GenerationAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "workspace",
        "user",
        "model_label",
        "provider_kind",
        "outcome",
        "input_tokens",
        "output_tokens",
        "credits_charged_units",
        "cached",
        "time_to_first_token_ms",
        "total_ms",
    ]
    list_filter = ["outcome", "cached", "provider_kind", "model_label", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["model_label", "upstream_model", "workspace__name", "user__email", "error"]
    list_select_related = ["workspace", "user"]
    date_hierarchy = "created_at"
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Generation | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Generation | None = None) -> bool:
        return False


@admin.register(ModelFallback)
class ModelFallbackAdmin(admin.ModelAdmin):
    list_display = ["model", "position", "fallback"]
    list_filter = ["model"]
    search_fields = ["model__model_id", "fallback__model_id"]
    list_select_related = ["model", "fallback"]
    autocomplete_fields = ["model", "fallback"]
