from __future__ import annotations

from typing import Any

from django import forms

from apps.core.forms import CleanTextMixin
from apps.generation.models import AIModel
from apps.media.kinds import CONSENT_REQUIRED, MAX_N, MAX_PROMPT, MAX_SPEECH_CHARACTERS

SIZES = ["256x256", "512x512", "1024x1024", "1792x1024", "1024x1792"]


class ImageForm(CleanTextMixin, forms.Form):
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
        self.fields["model"].queryset = models

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


class SpeechForm(CleanTextMixin, forms.Form):
    """The speech studio's form. `voices` are the grouped choices of the voice picker (the
    providers' stock voices and the workspace's own cloned voices); the speech kind checks the
    voice against the model."""

    model = forms.ModelChoiceField(queryset=AIModel.objects.none(), to_field_name="model_id", empty_label=None)
    voice = forms.ChoiceField(
        initial="alloy",
        help_text="A stock voice of the model's provider, or one of your cloned voices.",
        error_messages={"invalid_choice": "Pick one of the listed voices."},
    )
    speed = forms.FloatField(min_value=0.25, max_value=4.0, initial=1.0)
    format = forms.ChoiceField(choices=[("mp3", "MP3"), ("wav", "WAV"), ("opus", "Opus")], initial="mp3")
    text = forms.CharField(max_length=MAX_SPEECH_CHARACTERS, widget=forms.Textarea(attrs={"rows": 5}))

    def __init__(self, *args: Any, models: Any, voices: list[tuple[str, list[tuple[str, str]]]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["model"].queryset = models
        self.fields["voice"].choices = voices

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


class TranscriptionForm(CleanTextMixin, forms.Form):
    """The transcription studio's upload form; the file is checked by its content (and its
    duration measured), within the plan's upload limit, when the job is created."""

    upload_field = "file"
    identifier_fields = ("language",)

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
        self.fields["model"].queryset = models

    def parameters(self) -> dict[str, Any]:
        """The job's parameters but its upload (added when the file is stored)."""
        data = self.cleaned_data
        return {
            "language": data.get("language") or "",
            "format": data["format"],
            "timestamps": bool(data.get("timestamps")),
        }


class MultipleAudioInput(forms.FileInput):
    allow_multiple_selected = True


class MultipleAudioField(forms.FileField):
    """Several audio files in one field (a list of them once cleaned)."""

    widget = MultipleAudioInput

    def clean(self, data: Any, initial: Any = None) -> list[Any]:
        files = list(data) if isinstance(data, list | tuple) else [data] if data else []
        if not files and self.required:
            raise forms.ValidationError(self.error_messages["required"], code="required")
        clean_one = super().clean
        return [clean_one(file, initial) for file in files]


class VoiceCloneForm(CleanTextMixin, forms.Form):
    """The voices page's cloning form; the samples are checked by their content (within the
    plan's upload limit) when the job is created."""

    upload_field = "samples"

    model = forms.ModelChoiceField(queryset=AIModel.objects.none(), to_field_name="model_id", empty_label=None)
    name = forms.CharField(max_length=100)
    description = forms.CharField(max_length=500, required=False)
    samples = MultipleAudioField(
        label="Audio samples",
        widget=MultipleAudioInput(attrs={"accept": "audio/*"}),
        error_messages={"required": "Upload at least one audio sample."},
    )
    consent = forms.BooleanField(
        label="I confirm I have the right to clone this voice (my own, or with the speaker's consent).",
        error_messages={"required": CONSENT_REQUIRED},
    )

    def __init__(self, *args: Any, models: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["model"].queryset = models

    def parameters(self) -> dict[str, Any]:
        """The job's parameters but its samples (added when the files are stored)."""
        data = self.cleaned_data
        return {"name": data["name"], "description": data["description"], "consent": data["consent"]}
