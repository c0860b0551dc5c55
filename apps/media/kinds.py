"""What each job kind does: validate its parameters against the model, quote them, and run.

A kind is registered in `KINDS`; the jobs framework (services, task) is the same for all of
them. Only `image` exists yet; speech, transcription and voice cloning plug in here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from apps.credits.models import RateCard, Service
from apps.credits.rates import Quote, credits_quote
from apps.generation.models import AIModel
from apps.media.exceptions import MediaError
from apps.media.models import GenerationJob, JobKind, MediaFile


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

    def supports(self, model: AIModel) -> bool: ...
    def validate(self, model: AIModel, parameters: dict[str, Any]) -> dict[str, Any]: ...
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

    def supports(self, model: AIModel) -> bool:
        return model.supports_images

    def validate(self, model: AIModel, parameters: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(parameters) - IMAGE_PARAMETERS)
        if unknown:
            raise _error(unknown[0], f"Unknown parameter: {', '.join(unknown)}.")
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


KINDS: dict[str, Kind] = {JobKind.IMAGE.value: ImageKind()}
