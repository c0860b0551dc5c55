from __future__ import annotations

from typing import Any

from django import forms

from apps.generation.models import AIModel
from apps.media.kinds import MAX_N, MAX_PROMPT, MAX_SPEECH_CHARACTERS

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


class SpeechForm(forms.Form):
    """The speech studio's form; the speech kind validates the voice against the model."""

    model = forms.ModelChoiceField(queryset=AIModel.objects.none(), to_field_name="model_id", empty_label=None)
    voice = forms.CharField(max_length=64, initial="alloy", help_text="For example alloy, echo, nova or shimmer.")
    speed = forms.FloatField(min_value=0.25, max_value=4.0, initial=1.0)
    format = forms.ChoiceField(choices=[("mp3", "MP3"), ("wav", "WAV"), ("opus", "Opus")], initial="mp3")
    text = forms.CharField(max_length=MAX_SPEECH_CHARACTERS, widget=forms.Textarea(attrs={"rows": 5}))

    def __init__(self, *args: Any, models: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["model"].queryset = models  # type: ignore[attr-defined]

    def parameters(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {name: data[name] for name in ("text", "voice", "speed", "format")}


TRANSCRIPT_OUTPUTS = [
    ("text", "Text"),
    ("srt", "SRT"),
    ("vtt", "WebVTT"),
    ("json", "JSON"),
    ("verbose_json", "Verbose JSON"),
]


class TranscriptionForm(forms.Form):
    """The transcription studio's upload form; the file is checked by its content (and its
    duration measured) by `audio_upload_create` when the job is created."""

    model = forms.ModelChoiceField(queryset=AIModel.objects.none(), to_field_name="model_id", empty_label=None)
    file = forms.FileField(label="Audio file", help_text="MP3, WAV, OGG/Opus, FLAC, M4A or WebM.")
    language = forms.RegexField(
        regex=r"^[a-z]{2,3}(-[A-Za-z]{2,4})?$",
        required=False,
        max_length=12,
        help_text="Optional ISO-639-1 code, such as en.",
        error_messages={"invalid": "Use an ISO-639-1 code such as 'en'."},
    )
    timestamps = forms.BooleanField(required=False, label="Timestamps (segments)")
    format = forms.ChoiceField(choices=TRANSCRIPT_OUTPUTS, initial="text", label="Output format")

    def __init__(self, *args: Any, models: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["model"].queryset = models  # type: ignore[attr-defined]

    def parameters(self, upload_id: int) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "upload": upload_id,
            "language": data.get("language") or "",
            "format": data["format"],
            "timestamps": bool(data.get("timestamps")),
        }


class VoiceCloneForm(forms.Form):
    """The voices page's cloning form; the samples (`samples`, several files) are read from
    `request.FILES` and checked by their content by `audio_upload_create`."""

    model = forms.ModelChoiceField(queryset=AIModel.objects.none(), to_field_name="model_id", empty_label=None)
    name = forms.CharField(max_length=100)
    description = forms.CharField(max_length=500, required=False)
    consent = forms.BooleanField(
        required=False, label="I confirm I have the right to clone this voice (my own, or with the speaker's consent)."
    )

    def __init__(self, *args: Any, models: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["model"].queryset = models  # type: ignore[attr-defined]
