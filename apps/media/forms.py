from __future__ import annotations

from typing import Any

from django import forms

from apps.generation.models import AIModel
from apps.media.kinds import MAX_N, MAX_PROMPT

SIZES = ["256x256", "512x512", "1024x1024", "1792x1024", "1024x1792"]


class ImageForm(forms.Form):
    """The studio's prompt form. Choices are the union over image models; the service checks
    what the chosen model supports and says so."""

    model = forms.ModelChoiceField(queryset=AIModel.objects.none(), to_field_name="model_id", empty_label=None)
    prompt = forms.CharField(max_length=MAX_PROMPT, widget=forms.Textarea(attrs={"rows": 3}))
    negative_prompt = forms.CharField(
        max_length=MAX_PROMPT, required=False, widget=forms.Textarea(attrs={"rows": 2}), label="Negative prompt"
    )
    size = forms.ChoiceField(choices=[(s, s) for s in SIZES], initial="1024x1024")
    quality = forms.ChoiceField(choices=[("standard", "Standard"), ("hd", "HD")], initial="standard")
    style = forms.ChoiceField(choices=[("", "Default"), ("vivid", "Vivid"), ("natural", "Natural")], required=False)
    n = forms.IntegerField(min_value=1, max_value=MAX_N, initial=1, label="Images")

    def __init__(self, *args: Any, models: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["model"].queryset = models  # type: ignore[attr-defined]

    def parameters(self) -> dict[str, Any]:
        data = self.cleaned_data
        params = {name: data[name] for name in ("prompt", "negative_prompt", "size", "quality", "n")}
        if data.get("style"):
            params["style"] = data["style"]
        if not params["negative_prompt"]:
            params.pop("negative_prompt")
        return params


class GalleryFilterForm(forms.Form):
    model = forms.ChoiceField(required=False)
    start = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}), label="From")
    end = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}), label="To")

    def __init__(self, *args: Any, models: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["model"].choices = [("", "All models"), *[(m, m) for m in models]]  # type: ignore[attr-defined]
