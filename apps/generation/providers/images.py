"""Image generation behind one function, `generate_images`: the built-in mock renders a
deterministic picture of the prompt with Pillow (offline); every other provider goes through
litellm's `image_generation` (OpenAI DALL·E 2/3 and compatible endpoints), asked for base64 so
the bytes never depend on a short-lived upstream URL.

Blocking (it runs inside a Celery task, never on an event loop). litellm is imported on first
use. Failures raise `ProviderError` (`retryable` for rate limits, time-outs and 5xx).
"""

from __future__ import annotations

import base64
import hashlib
import io
import textwrap
from dataclasses import dataclass, field

from apps.generation.providers.base import ModelTarget, ProviderError, ProviderKind, is_retryable_status


@dataclass(frozen=True)
class ImageResult:
    images: list[bytes]  # encoded images (PNG from the mock; whatever the upstream sends)
    revised_prompts: list[str | None] = field(default_factory=list)


def parse_size(size: str) -> tuple[int, int]:
    """`"1024x768"` → (1024, 768); ValueError for anything else."""
    width, sep, height = size.lower().partition("x")
    if not sep:
        raise ValueError(f"not a size: {size!r}")
    w, h = int(width), int(height)
    if not (0 < w <= 8192 and 0 < h <= 8192):
        raise ValueError(f"not a size: {size!r}")
    return w, h


def generate_images(
    target: ModelTarget,
    *,
    prompt: str,
    size: str,
    quality: str,
    style: str,
    n: int,
    negative_prompt: str | None = None,
) -> ImageResult:
    """`n` images of `size` for `prompt` from one target."""
    if target.provider.kind == ProviderKind.MOCK:
        return _mock(target, prompt=prompt, size=size, quality=quality, style=style, n=n, negative=negative_prompt)
    return _litellm(target, prompt=prompt, size=size, quality=quality, style=style, n=n)


# ------------------------------------------------------------------------------------------ mock


def _mock(
    target: ModelTarget, *, prompt: str, size: str, quality: str, style: str, n: int, negative: str | None
) -> ImageResult:
    """A gradient whose colours come from the prompt, with the prompt written on it. The same
    request gives the same bytes. Provider options: `fail` as for chat (`"before:429"`,
    `"before:500"`, `"before:timeout"`), `latency_ms` (a delay before answering)."""
    import time

    from PIL import Image, ImageDraw

    options = target.provider.options
    fail = str(options.get("fail") or "")
    when, _, arg = fail.partition(":")
    if when == "before":
        if arg == "timeout":
            raise ProviderError("mock: upstream timed out", retryable=True)
        status = int(arg or 500)
        raise ProviderError(
            f"mock: upstream answered {status}", status_code=status, retryable=is_retryable_status(status)
        )
    if options.get("latency_ms"):
        time.sleep(float(options["latency_ms"]) / 1000)
    width, height = parse_size(size)
    images = []
    for index in range(n):
        digest = hashlib.sha256(f"{prompt}|{negative}|{size}|{quality}|{style}|{index}".encode()).digest()
        top, bottom = digest[0:3], digest[3:6]
        image = Image.new("RGB", (width, height))
        draw = ImageDraw.Draw(image)
        for y in range(height):
            t = y / max(height - 1, 1)
            colour = tuple(int(a + (b - a) * t) for a, b in zip(top, bottom, strict=True))
            draw.line([(0, y), (width, y)], fill=colour)
        text = "\n".join(textwrap.wrap(prompt, width=max(10, width // 8))[: max(1, height // 14 - 2)])
        draw.multiline_text((8, 8), f"{text}\n#{index + 1} {quality} {style}", fill=(255, 255, 255))
        out = io.BytesIO()
        image.save(out, format="PNG")
        images.append(out.getvalue())
    return ImageResult(images=images, revised_prompts=[prompt] * n)


# ---------------------------------------------------------------------------------------- litellm


def _litellm(target: ModelTarget, *, prompt: str, size: str, quality: str, style: str, n: int) -> ImageResult:
    from apps.generation.providers.llm import litellm_connection, litellm_model, to_provider_error
    from apps.generation.tokens import load_litellm

    kwargs: dict[str, object] = {
        **litellm_connection(target),
        "model": litellm_model(target),
        "prompt": prompt,
        "n": n,
        "size": size,
        "response_format": "b64_json",
        "num_retries": 0,
        "drop_params": True,
    }
    if quality:
        kwargs["quality"] = quality
    if style:
        kwargs["style"] = style
    litellm = load_litellm()
    try:
        response = litellm.image_generation(**kwargs)
    except Exception as exc:
        raise to_provider_error(exc) from exc
    images: list[bytes] = []
    revised: list[str | None] = []
    for item in getattr(response, "data", None) or []:
        b64 = item.get("b64_json") if isinstance(item, dict) else getattr(item, "b64_json", None)
        if not b64:
            raise ProviderError("the upstream sent an image without b64_json data", retryable=False)
        try:
            images.append(base64.b64decode(b64, validate=True))
        except ValueError as exc:
            raise ProviderError("the upstream sent invalid base64 image data", retryable=False) from exc
        prompt_out = item.get("revised_prompt") if isinstance(item, dict) else getattr(item, "revised_prompt", None)
        revised.append(prompt_out)
    if not images:
        raise ProviderError("the upstream returned no image", retryable=True)
    return ImageResult(images=images, revised_prompts=revised)
