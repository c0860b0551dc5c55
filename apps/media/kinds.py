"""What each job kind does: validate its parameters against the model, quote them, and run.

A kind is registered in `KINDS`; the jobs framework (services, task) is the same for all of
them: `image`, `speech`, `transcription` and `voice_clone`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from apps.credits.models import RateCard, Service
from apps.credits.rates import Quote, credits_quote
from apps.generation.models import AIModel
from apps.media.exceptions import MediaError
from apps.media.models import GenerationJob, JobKind, MediaFile, MediaKind


@dataclass
class RunResult:
    files: list[MediaFile]
    delivered: dict[str, Any]  # what was produced, for the settle's usage record
    charge_units: int


@dataclass
class RunContext:
    """Handed to a kind's `run`: `progress(percent)` records a heartbeat and raises
    `JobAbandoned` if the job was cancelled (or taken over) meanwhile; `created` collects the
    files written, so they can be removed if the job is abandoned."""

    progress: Callable[[int], None]
    created: list[MediaFile] = field(default_factory=list)


class Kind(Protocol):
    service: str
    capability: str
    # The parameter that names the job's uploaded files ("" when it takes none) and how many.
    upload_parameter: str
    max_uploads: int

    def supports(self, model: AIModel) -> bool: ...
    def validate(
        self, model: AIModel, parameters: dict[str, Any], *, workspace_id: int | None = None
    ) -> dict[str, Any]: ...
    def attach(self, job: GenerationJob) -> None: ...
    def quote(self, model: AIModel, parameters: dict[str, Any], rate_card: RateCard | None = None) -> Quote: ...
    def run(self, job: GenerationJob, context: RunContext) -> RunResult: ...


# ------------------------------------------------------------------------------------ images

MAX_PROMPT = 4000
MAX_N = 4
# For image models whose `image_options` are empty.
DEFAULT_IMAGE_OPTIONS: dict[str, Any] = {
    "sizes": ["256x256", "512x512", "1024x1024"],
    "qualities": ["standard"],
    "styles": [],
    "max_n": MAX_N,
    "negative_prompt": False,
}
IMAGE_PARAMETERS = frozenset({"prompt", "negative_prompt", "size", "quality", "style", "n"})


def image_options(model: AIModel) -> dict[str, Any]:
    return {**DEFAULT_IMAGE_OPTIONS, **(model.image_options or {})}


def _error(param: str, message: str) -> MediaError:
    return MediaError(message, status_code=400, param=param)


def _choice(params: dict[str, Any], name: str, allowed: list[str], default: str | None, model_id: str) -> str | None:
    value = params.get(name)
    if value in (None, ""):
        return default
    if not isinstance(value, str):
        raise _error(name, f"{name} must be a string.")
    value = value.strip().lower()
    if not allowed:
        raise _error(name, f"The model `{model_id}` does not support the {name} parameter.")
    if value not in allowed:
        raise _error(name, f"Invalid {name} {value!r} for `{model_id}`: use one of {', '.join(allowed)}.")
    return value


class ImageKind:
    service: str = Service.IMAGE
    capability: str = "image generation"
    upload_parameter: str = ""
    max_uploads: int = 0

    def supports(self, model: AIModel) -> bool:
        return model.supports_images

    def validate(
        self, model: AIModel, parameters: dict[str, Any], *, workspace_id: int | None = None
    ) -> dict[str, Any]:
        _unknown(parameters, IMAGE_PARAMETERS)
        options = image_options(model)
        prompt = parameters.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise _error("prompt", "Write a prompt.")
        prompt = prompt.strip()
        if len(prompt) > MAX_PROMPT:
            raise _error("prompt", f"The prompt is too long: {len(prompt)} characters (at most {MAX_PROMPT}).")
        negative = parameters.get("negative_prompt") or ""
        if not isinstance(negative, str):
            raise _error("negative_prompt", "negative_prompt must be a string.")
        negative = negative.strip()
        if negative and not options["negative_prompt"]:
            raise _error("negative_prompt", f"The model `{model.model_id}` does not support a negative prompt.")
        if len(negative) > MAX_PROMPT:
            raise _error("negative_prompt", f"The negative prompt is too long (at most {MAX_PROMPT} characters).")
        sizes = list(options["sizes"])
        default_size = "1024x1024" if "1024x1024" in sizes else (sizes[0] if sizes else None)
        size = _choice(parameters, "size", sizes, default_size, model.model_id)
        qualities = list(options["qualities"])
        quality = _choice(parameters, "quality", qualities, qualities[0] if qualities else "standard", model.model_id)
        style = _choice(parameters, "style", list(options["styles"]), None, model.model_id)
        n = parameters.get("n", 1)
        if n is None:
            n = 1
        if isinstance(n, bool) or not isinstance(n, int):
            raise _error("n", "n must be a whole number.")
        max_n = min(int(options["max_n"] or 1), MAX_N)
        if not 1 <= n <= max_n:
            raise _error("n", f"n must be between 1 and {max_n} for `{model.model_id}`.")
        return {
            "prompt": prompt,
            "negative_prompt": negative,
            "size": size,
            "quality": quality,
            "style": style or "",
            "n": n,
        }

    def attach(self, job: GenerationJob) -> None:
        """Nothing to attach: an image job has no input file."""

    def quote(self, model: AIModel, parameters: dict[str, Any], rate_card: RateCard | None = None) -> Quote:
        return self._quote(model.model_id, parameters, parameters["n"], rate_card)

    def _quote(self, model_id: str, parameters: dict[str, Any], images: int, rate_card: RateCard | None) -> Quote:
        return credits_quote(
            service=Service.IMAGE,
            model=model_id,
            rate_card=rate_card,
            images=images,
            size=parameters["size"],
            quality=parameters["quality"] or "",
        )

    def run(self, job: GenerationJob, context: RunContext) -> RunResult:
        from apps.generation.providers.images import generate_images
        from apps.media.storage import image_files_create

        assert job.model is not None
        params = job.parameters
        context.progress(10)
        result = generate_images(
            job.model.target(),
            prompt=params["prompt"],
            size=params["size"],
            quality=params["quality"],
            style=params["style"],
            n=params["n"],
            negative_prompt=params["negative_prompt"] or None,
        )
        images = result.images[: params["n"]]  # never charge for more than was asked and held
        context.progress(60)
        originals: list[MediaFile] = []
        for index, data in enumerate(images):
            revised = result.revised_prompts[index] if index < len(result.revised_prompts) else None
            metadata = {
                "prompt": params["prompt"],
                "negative_prompt": params["negative_prompt"],
                "revised_prompt": revised,
                "size": params["size"],
                "quality": params["quality"],
                "style": params["style"],
                "model": job.model_label,
                "index": index,
            }
            original = image_files_create(job=job, data=data, metadata=metadata)
            originals.append(original)
            context.created.append(original)
            context.progress(60 + int(35 * (index + 1) / len(images)))
        rate_card = job.reservation.rate_card if job.reservation is not None else None
        quote = self._quote(job.model_label, params, len(images), rate_card)
        return RunResult(files=originals, delivered={"images": len(images)}, charge_units=quote.units)


# ------------------------------------------------------------------------------------ speech

MAX_SPEECH_CHARACTERS = 4096  # OpenAI's limit
SPEECH_PARAMETERS = frozenset({"text", "voice", "speed", "format", "instructions"})
VOICE_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
OPENAI_VOICES = ("alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer", "verse")
# ElevenLabs' premade voices (every account has them): id, name.
ELEVENLABS_VOICES = (
    ("21m00Tcm4TlvDq8ikWAM", "Rachel"),
    ("9BWtsMINqrJLrRacOk9x", "Aria"),
    ("EXAVITQu4vr4xnSDxMaL", "Sarah"),
    ("FGY2WhTYpPnrIDTdsKH5", "Laura"),
    ("CwhRBWXzGAHq8TQ4Fs17", "Roger"),
    ("IKne3meq5aSn9XLyUdCD", "Charlie"),
    ("JBFqnCBsd6RMkjVDRZzb", "George"),
    ("N2lVS1w4EtoT3dr4eOWO", "Callum"),
    ("pNInz6obpgDQGcFmaJgB", "Adam"),
)


def stock_voice_label(voice: str) -> str | None:
    """The name people know a stock voice by (any provider's: "Rachel", "Alloy"), or None for
    a voice that is not a stock one (a cloned voice)."""
    for voice_id, name in ELEVENLABS_VOICES:
        if voice_id == voice:
            return name
    return voice.capitalize() if voice.lower() in OPENAI_VOICES else None


def voice_label(voice: str, *, workspace_id: int) -> str:
    """The name of the voice a speech job uses: a stock voice's, or the name the workspace gave
    its cloned voice; the id itself when neither knows it."""
    from apps.media.models import Voice

    stock = stock_voice_label(voice)
    if stock is not None:
        return stock
    cloned = Voice.objects.filter(workspace_id=workspace_id, provider_voice_id=voice).values_list("name", flat=True)
    return next(iter(cloned), voice)


def stock_voices(provider_kind: str) -> list[tuple[str, str]]:
    """The voices a speech provider offers every account (id, label): ElevenLabs' premade
    voices; OpenAI's for OpenAI, the OpenAI-compatible providers and the mock."""
    from apps.generation.providers.audio import ELEVENLABS

    if provider_kind == ELEVENLABS:
        return list(ELEVENLABS_VOICES)
    return [(voice, voice.capitalize()) for voice in OPENAI_VOICES]


def _unknown(parameters: dict[str, Any], allowed: frozenset[str]) -> None:
    unknown = sorted(set(parameters) - allowed)
    if unknown:
        raise _error(unknown[0], f"Unknown parameter: {', '.join(unknown)}.")


class SpeechKind:
    service: str = Service.SPEECH
    capability: str = "speech synthesis"
    upload_parameter: str = ""
    max_uploads: int = 0

    def supports(self, model: AIModel) -> bool:
        return model.supports_speech

    def validate(
        self, model: AIModel, parameters: dict[str, Any], *, workspace_id: int | None = None
    ) -> dict[str, Any]:
        from apps.generation.providers.audio import MAX_SPEED, MIN_SPEED, SPEECH_FORMATS

        _unknown(parameters, SPEECH_PARAMETERS)
        text = parameters.get("text")
        if not isinstance(text, str) or not text.strip():
            raise _error("text", "Write the text to speak.")
        if len(text) > MAX_SPEECH_CHARACTERS:
            raise _error("text", f"The text is too long: {len(text)} characters (at most {MAX_SPEECH_CHARACTERS}).")
        voice = parameters.get("voice")
        if voice in (None, ""):
            voice = "alloy"
        if not isinstance(voice, str) or not VOICE_PATTERN.match(voice):
            raise _error("voice", "voice must be a voice name (letters, digits, - and _).")
        _check_cloned_voice(voice, workspace_id)
        if model.provider.kind == "openai" and voice.lower() not in OPENAI_VOICES:
            voices = ", ".join(OPENAI_VOICES)
            raise _error("voice", f"Invalid voice {voice!r} for `{model.model_id}`: use one of {voices}.")
        speed = parameters.get("speed", 1.0)
        if speed is None:
            speed = 1.0
        if isinstance(speed, bool) or not isinstance(speed, int | float):
            raise _error("speed", "speed must be a number.")
        if not MIN_SPEED <= float(speed) <= MAX_SPEED:
            raise _error("speed", f"speed must be between {MIN_SPEED} and {MAX_SPEED}.")
        fmt = _choice(parameters, "format", list(SPEECH_FORMATS), "mp3", model.model_id)
        instructions = parameters.get("instructions") or ""
        if not isinstance(instructions, str):
            raise _error("instructions", "instructions must be a string.")
        if len(instructions) > MAX_SPEECH_CHARACTERS:
            raise _error("instructions", f"The instructions are too long (at most {MAX_SPEECH_CHARACTERS} characters).")
        return {"text": text, "voice": voice, "speed": float(speed), "format": fmt, "instructions": instructions}

    def attach(self, job: GenerationJob) -> None:
        """Nothing to attach: a speech job has no input file."""

    def quote(self, model: AIModel, parameters: dict[str, Any], rate_card: RateCard | None = None) -> Quote:
        return self._quote(model.model_id, len(parameters["text"]), rate_card)

    def _quote(self, model_id: str, characters: int, rate_card: RateCard | None) -> Quote:
        return credits_quote(service=Service.SPEECH, model=model_id, rate_card=rate_card, characters=characters)

    def run(self, job: GenerationJob, context: RunContext) -> RunResult:
        from apps.core.audio import AudioError
        from apps.generation.providers.audio import synthesize_speech
        from apps.media.storage import audio_file_create

        assert job.model is not None
        params = job.parameters
        context.progress(10)
        try:
            result = synthesize_speech(
                job.model.target(),
                text=params["text"],
                voice=params["voice"],
                speed=params["speed"],
                fmt=params["format"],
                instructions=params.get("instructions") or None,
            )
        except (ValueError, AudioError) as exc:
            raise MediaError(str(exc)) from exc
        context.progress(70)
        audio = audio_file_create(
            job=job,
            data=result.audio,
            fmt=result.fmt,
            content_type=result.content_type,
            duration=result.duration_seconds,
            metadata={
                "text": params["text"][:200],
                "voice": params["voice"],
                # Kept with the file: the history still names a cloned voice deleted since.
                "voice_name": voice_label(params["voice"], workspace_id=job.workspace_id),
                "speed": params["speed"],
                "format": result.fmt,
                "model": job.model_label,
                "characters": result.characters,
            },
        )
        context.created.append(audio)
        context.progress(95)
        characters = min(result.characters, len(params["text"]))  # never more than was quoted
        rate_card = job.reservation.rate_card if job.reservation is not None else None
        quote = self._quote(job.model_label, characters, rate_card)
        return RunResult(files=[audio], delivered={"characters": characters}, charge_units=quote.units)


# ----------------------------------------------------------------------------- transcription

TRANSCRIPTION_PARAMETERS = frozenset({"upload", "language", "prompt", "format", "timestamps"})
LANGUAGE_PATTERN = re.compile(r"^[a-z]{2,3}(-[A-Za-z]{2,4})?$")
MAX_TRANSCRIPTION_PROMPT = 2000


def billed_seconds(duration: Decimal) -> Decimal:
    """Transcription is billed on the measured duration rounded up to the whole second."""
    return Decimal(math.ceil(duration))


class TranscriptionKind:
    service: str = Service.TRANSCRIPTION
    capability: str = "transcription"
    upload_parameter: str = "upload"  # one id
    max_uploads: int = 1

    def supports(self, model: AIModel) -> bool:
        return model.supports_transcription

    def validate(
        self, model: AIModel, parameters: dict[str, Any], *, workspace_id: int | None = None
    ) -> dict[str, Any]:
        from apps.generation.providers.audio import TRANSCRIPT_FORMATS

        _unknown(parameters, TRANSCRIPTION_PARAMETERS)
        upload_id = parameters.get("upload")
        if isinstance(upload_id, bool) or not isinstance(upload_id, int):
            raise _error("upload", "upload must be the id of an uploaded audio file.")
        uploads = MediaFile.objects.filter(pk=upload_id, kind=MediaKind.UPLOAD, job__isnull=True)
        if workspace_id is not None:
            uploads = uploads.filter(workspace_id=workspace_id)
        upload = uploads.first()
        if upload is None or upload.duration is None:
            raise _error("upload", "No such audio upload (or it was already used).")
        language = parameters.get("language") or ""
        if not isinstance(language, str) or (language and not LANGUAGE_PATTERN.match(language)):
            raise _error("language", "language must be an ISO-639-1 code such as 'en'.")
        prompt = parameters.get("prompt") or ""
        if not isinstance(prompt, str):
            raise _error("prompt", "prompt must be a string.")
        if len(prompt) > MAX_TRANSCRIPTION_PROMPT:
            raise _error("prompt", f"The prompt is too long (at most {MAX_TRANSCRIPTION_PROMPT} characters).")
        fmt = _choice(parameters, "format", list(TRANSCRIPT_FORMATS), "json", model.model_id)
        timestamps = parameters.get("timestamps", False)
        if not isinstance(timestamps, bool):
            raise _error("timestamps", "timestamps must be true or false.")
        return {
            "upload": upload.pk,
            "duration": str(upload.duration),
            "language": language,
            "prompt": prompt,
            "format": fmt,
            "timestamps": timestamps or fmt in ("verbose_json", "srt", "vtt"),
        }

    def attach(self, job: GenerationJob) -> None:
        """The upload belongs to the job from now on (so the orphan cleanup leaves it alone)."""
        MediaFile.objects.filter(pk=job.parameters["upload"], workspace_id=job.workspace_id, job__isnull=True).update(
            job=job
        )

    def quote(self, model: AIModel, parameters: dict[str, Any], rate_card: RateCard | None = None) -> Quote:
        return self._quote(model.model_id, Decimal(parameters["duration"]), rate_card)

    def _quote(self, model_id: str, duration: Decimal, rate_card: RateCard | None) -> Quote:
        return credits_quote(
            service=Service.TRANSCRIPTION, model=model_id, rate_card=rate_card, audio_seconds=billed_seconds(duration)
        )

    def run(self, job: GenerationJob, context: RunContext) -> RunResult:
        from apps.core.audio import AudioError
        from apps.generation.providers.audio import transcribe, transcript_as
        from apps.media.storage import transcript_file_create

        assert job.model is not None
        params = job.parameters
        upload = MediaFile.objects.filter(pk=params["upload"], workspace_id=job.workspace_id).first()
        if upload is None:
            raise MediaError("The uploaded audio file was deleted.")
        context.progress(5)
        with upload.file.open("rb") as handle:
            audio = handle.read()
        context.progress(15)
        try:
            result = transcribe(
                job.model.target(),
                audio=audio,
                filename=str(upload.metadata.get("filename") or "audio"),
                language=params["language"] or None,
                timestamps=params["timestamps"],
                prompt=params["prompt"] or None,
            )
        except (ValueError, AudioError) as exc:
            raise MediaError(getattr(exc, "message", str(exc))) from exc
        context.progress(80)
        transcript = transcript_json(result)
        output = transcript_file_create(
            job=job,
            text=transcript_as(result, params["format"]),
            fmt=params["format"],
            metadata={"format": params["format"], "model": job.model_label, "transcript": transcript},
        )
        context.created.append(output)
        context.progress(95)
        # Billed on what was measured, never more than was quoted from the same file.
        duration = min(result.duration_seconds, Decimal(params["duration"]))
        rate_card = job.reservation.rate_card if job.reservation is not None else None
        quote = self._quote(job.model_label, duration, rate_card)
        return RunResult(
            files=[output], delivered={"audio_seconds": str(billed_seconds(duration))}, charge_units=quote.units
        )


def transcript_json(result: Any) -> dict[str, Any]:
    """A TranscriptResult as JSON (stored with the job's transcript file)."""
    return {
        "text": result.text,
        "language": result.language or "",
        "duration": str(result.duration_seconds),
        "segments": [{"start": str(s.start), "end": str(s.end), "text": s.text} for s in result.segments],
    }


def transcript_from_json(data: dict[str, Any]) -> Any:
    from apps.generation.providers.audio import Segment, TranscriptResult

    return TranscriptResult(
        text=data["text"],
        language=data.get("language") or None,
        duration_seconds=Decimal(data["duration"]),
        segments=[Segment(Decimal(s["start"]), Decimal(s["end"]), s["text"]) for s in data.get("segments", [])],
    )


# ----------------------------------------------------------------------------- voice cloning

VOICE_CLONE_PARAMETERS = frozenset({"name", "description", "samples", "consent"})
MAX_VOICE_DESCRIPTION = 500
CONSENT_TEXT = (
    "I confirm that I have the right to clone this voice: it is my own voice, or I have the "
    "speaker's permission to clone it and to use the cloned voice."
)
CONSENT_REQUIRED = "You must confirm you have the right to clone this voice."


def _check_cloned_voice(voice: str, workspace_id: int | None) -> None:
    """A cloned voice may only be used by the workspace that cloned it (an id that is not a
    cloned voice is left to the provider to judge)."""
    from apps.media.models import Voice

    voices = Voice.objects.filter(provider_voice_id=voice)
    if not voices.exists():
        return
    if workspace_id is None or not voices.filter(workspace_id=workspace_id).exists():
        raise _error("voice", f"No such voice: {voice!r}.")


class VoiceCloneKind:
    service: str = Service.VOICE_CLONE
    capability: str = "voice cloning"
    upload_parameter: str = "samples"  # a list of ids
    max_uploads: int = 25  # MAX_VOICE_SAMPLES of the provider layer

    def supports(self, model: AIModel) -> bool:
        return model.supports_voice_cloning

    def validate(
        self, model: AIModel, parameters: dict[str, Any], *, workspace_id: int | None = None
    ) -> dict[str, Any]:
        from apps.generation.providers.audio import MAX_VOICE_NAME, MAX_VOICE_SAMPLES

        _unknown(parameters, VOICE_CLONE_PARAMETERS)
        if parameters.get("consent") is not True:
            raise _error("consent", CONSENT_REQUIRED)
        name = parameters.get("name")
        if not isinstance(name, str) or not name.strip():
            raise _error("name", "The voice needs a name.")
        name = name.strip()
        if len(name) > MAX_VOICE_NAME:
            raise _error("name", f"The voice name is longer than {MAX_VOICE_NAME} characters.")
        description = parameters.get("description") or ""
        if not isinstance(description, str):
            raise _error("description", "description must be a string.")
        description = description.strip()
        if len(description) > MAX_VOICE_DESCRIPTION:
            raise _error("description", f"The description is too long (at most {MAX_VOICE_DESCRIPTION} characters).")
        samples = parameters.get("samples")
        if (
            not isinstance(samples, list)
            or not samples
            or any(isinstance(s, bool) or not isinstance(s, int) for s in samples)
        ):
            raise _error("samples", "samples must be a list of the ids of uploaded audio files.")
        if len(samples) > MAX_VOICE_SAMPLES or len(set(samples)) != len(samples):
            raise _error("samples", f"Upload 1 to {MAX_VOICE_SAMPLES} different audio samples.")
        uploads = MediaFile.objects.filter(pk__in=samples, kind=MediaKind.UPLOAD, job__isnull=True)
        if workspace_id is not None:
            uploads = uploads.filter(workspace_id=workspace_id)
        if uploads.filter(duration__isnull=False).count() != len(samples):
            raise _error("samples", "No such audio upload (or it was already used).")
        return {"name": name, "description": description, "samples": samples, "consent": True}

    def attach(self, job: GenerationJob) -> None:
        """The samples belong to the job from now on (so the orphan cleanup leaves them alone)."""
        MediaFile.objects.filter(
            pk__in=job.parameters["samples"], workspace_id=job.workspace_id, job__isnull=True
        ).update(job=job)

    def quote(self, model: AIModel, parameters: dict[str, Any], rate_card: RateCard | None = None) -> Quote:
        return self._quote(model.model_id, rate_card)

    def _quote(self, model_id: str, rate_card: RateCard | None) -> Quote:
        return credits_quote(service=Service.VOICE_CLONE, model=model_id, rate_card=rate_card, items=1)

    def run(self, job: GenerationJob, context: RunContext) -> RunResult:
        from apps.core.audio import AudioError
        from apps.generation.providers.audio import clone_voice
        from apps.media.models import Voice

        assert job.model is not None
        params = job.parameters
        rate_card = job.reservation.rate_card if job.reservation is not None else None
        delivered = {"items": 1}
        existing = Voice.objects.filter(job=job).first()
        if existing is not None:  # cloned by an earlier attempt that did not finish
            return RunResult(files=[], delivered=delivered, charge_units=self._quote(job.model_label, rate_card).units)
        uploads = list(MediaFile.objects.filter(pk__in=params["samples"], workspace_id=job.workspace_id))
        if len(uploads) != len(params["samples"]):
            raise MediaError("An uploaded sample was deleted.")
        context.progress(5)
        samples = []
        for upload in uploads:
            with upload.file.open("rb") as handle:
                samples.append((str(upload.metadata.get("filename") or "sample"), handle.read()))
        context.progress(20)
        try:
            cloned = clone_voice(
                job.model.target().provider, name=params["name"], samples=samples, description=params["description"]
            )
        except (ValueError, AudioError) as exc:
            raise MediaError(getattr(exc, "message", str(exc))) from exc
        context.progress(90)
        Voice.objects.create(
            workspace_id=job.workspace_id,
            name=params["name"],
            description=params["description"],
            model=job.model,
            provider_voice_id=cloned.voice_id,
            job=job,
            created_by_id=job.user_id,
            consent_at=job.created_at,
            consent_text=CONSENT_TEXT,
        )
        return RunResult(files=[], delivered=delivered, charge_units=self._quote(job.model_label, rate_card).units)


KINDS: dict[str, Kind] = {
    JobKind.IMAGE.value: ImageKind(),
    JobKind.SPEECH.value: SpeechKind(),
    JobKind.TRANSCRIPTION.value: TranscriptionKind(),
    JobKind.VOICE_CLONE.value: VoiceCloneKind(),
}
