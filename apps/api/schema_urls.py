"""The URL configuration the OpenAPI schema is generated from: the platform API as routed, and
the OpenAI-compatible `/v1` endpoints described by documentation views. The `/v1` endpoints
themselves are async Django views (`apps.api.openai`), which DRF cannot introspect; these views
document them with the very serializers that validate their requests."""

from __future__ import annotations

from django.urls import include, path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.api.docs import OPENAI_BILLED, openai_errors
from apps.api.fields import IdentifierField, TextField
from apps.api.serializers import (
    ChatCompletionRequestSerializer,
    ChatCompletionSerializer,
    EmbeddingsRequestSerializer,
    EmbeddingsResponseSerializer,
    ModelListSerializer,
    ModelSerializer,
)

READ_ERRORS = openai_errors()
ERRORS = openai_errors(*OPENAI_BILLED)
MEDIA_ERRORS = openai_errors(*OPENAI_BILLED, 409, 504)  # the job was cancelled; still running after the wait
SSE_EXAMPLE = (
    'data: {"id":"chatcmpl-…","object":"chat.completion.chunk","choices":[{"index":0,'
    '"delta":{"role":"assistant","content":"Hel"},"finish_reason":null}]}\n\n'
    "…\n\n"
    'data: {"id":"chatcmpl-…","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":9,'
    '"completion_tokens":12,"total_tokens":21}}\n\n'
    "data: [DONE]\n\n"
)


class _Doc(APIView):
    """A documentation-only view (never routed)."""

    authentication_classes: list[type] = []
    permission_classes: list[type] = []


class ModelsDoc(_Doc):
    @extend_schema(
        operation_id="v1_models_list", tags=["OpenAI-compatible"], responses={200: ModelListSerializer, **READ_ERRORS}
    )
    def get(self, request: Request) -> Response:
        raise NotImplementedError


class ModelDoc(_Doc):
    @extend_schema(
        operation_id="v1_models_retrieve", tags=["OpenAI-compatible"], responses={200: ModelSerializer, **READ_ERRORS}
    )
    def get(self, request: Request, model_id: str) -> Response:
        raise NotImplementedError


class ChatCompletionsDoc(_Doc):
    @extend_schema(
        operation_id="v1_chat_completions_create",
        tags=["OpenAI-compatible"],
        summary="Create a chat completion (JSON, or server-sent events with `stream: true`)",
        description=(
            "Billed in the key's workspace credits: the estimate is held, the delivered usage is charged "
            "once. With `stream: true` the response is `text/event-stream` in OpenAI's chunk format, "
            "ending with `data: [DONE]`; `stream_options.include_usage` adds a last chunk with the usage. "
            "A client that disconnects is charged only for what was delivered. Header "
            "`X-Aikeedo-Cache: true|false` chooses the response cache for this request."
        ),
        request=ChatCompletionRequestSerializer,
        parameters=[OpenApiParameter("X-Aikeedo-Cache", str, OpenApiParameter.HEADER, required=False)],
        responses={
            (200, "application/json"): ChatCompletionSerializer,
            (200, "text/event-stream"): OpenApiResponse(
                OpenApiTypes.STR,
                description="Server-sent events (`stream: true`)",
                examples=[OpenApiExample("stream", value=SSE_EXAMPLE, media_type="text/event-stream")],
            ),
            **ERRORS,
        },
    )
    def post(self, request: Request) -> Response:
        raise NotImplementedError


class EmbeddingsDoc(_Doc):
    @extend_schema(
        operation_id="v1_embeddings_create",
        tags=["OpenAI-compatible"],
        request=EmbeddingsRequestSerializer,
        responses={200: EmbeddingsResponseSerializer, **ERRORS},
    )
    def post(self, request: Request) -> Response:
        raise NotImplementedError


class ImagesRequestDoc(serializers.Serializer):
    model = IdentifierField(
        required=False, help_text="An image model, e.g. dall-e-3 or mock-image (optional, as in OpenAI's API)."
    )
    prompt = TextField(max_length=4000)
    negative_prompt = TextField(required=False, help_text="Where the model supports it.")
    n = serializers.IntegerField(required=False, min_value=1, max_value=4)
    size = IdentifierField(required=False, help_text="e.g. 1024x1024; the model's sizes only.")
    quality = serializers.ChoiceField(choices=["standard", "hd"], required=False)
    style = serializers.ChoiceField(choices=["vivid", "natural"], required=False)  # type: ignore[assignment]
    response_format = serializers.ChoiceField(choices=["url", "b64_json"], required=False)
    user = IdentifierField(required=False)
    link_ttl = serializers.IntegerField(
        required=False,
        min_value=10,
        max_value=3600,
        help_text="Seconds the image URLs stay valid: 10 to 3600 (default 3600). An Aikeedo extension.",
    )


IMAGE_URL_HELP = (
    "A download link, and a bearer capability: anyone holding it can fetch the image until it expires "
    "(`link_ttl`, one hour by default), without a key. Treat it as a secret."
)


class ImageDataDoc(serializers.Serializer):
    url = serializers.URLField(required=False, help_text=IMAGE_URL_HELP)
    b64_json = serializers.CharField(required=False)
    revised_prompt = serializers.CharField(required=False, allow_null=True)


class ImagesResponseDoc(serializers.Serializer):
    created = serializers.IntegerField()
    data = ImageDataDoc(many=True)  # type: ignore[assignment]  # the field, not .data


class ImagesDoc(_Doc):
    @extend_schema(
        operation_id="v1_images_generations_create",
        tags=["OpenAI-compatible"],
        summary="Generate images (runs as a job; the call waits for it)",
        description=IMAGE_URL_HELP,
        request=ImagesRequestDoc,
        responses={200: ImagesResponseDoc, **MEDIA_ERRORS},
    )
    def post(self, request: Request) -> Response:
        raise NotImplementedError


class SpeechRequestDoc(serializers.Serializer):
    model = IdentifierField(help_text="A speech model, e.g. tts-1 or mock-tts (required, as in OpenAI's API).")
    input = TextField(max_length=4096)
    voice = IdentifierField()
    speed = serializers.FloatField(required=False, min_value=0.25, max_value=4)
    response_format = serializers.ChoiceField(choices=["mp3", "wav", "opus", "aac", "flac"], required=False)
    instructions = TextField(required=False)


class SpeechDoc(_Doc):
    @extend_schema(
        operation_id="v1_audio_speech_create",
        tags=["OpenAI-compatible"],
        summary="Synthesise speech (returns the audio bytes); charged per 1K characters",
        request=SpeechRequestDoc,
        responses={(200, "audio/mpeg"): OpenApiTypes.BINARY, **MEDIA_ERRORS},
    )
    def post(self, request: Request) -> Response:
        raise NotImplementedError


class TranscriptionRequestDoc(serializers.Serializer):
    file = serializers.FileField(help_text="Audio (WAV, MP3, Ogg/Opus, FLAC, M4A, WebM), checked by content.")
    model = IdentifierField(
        help_text="A transcription model, e.g. whisper-1 or mock-whisper (required, as in OpenAI's API)."
    )
    language = IdentifierField(required=False)
    prompt = TextField(required=False)
    response_format = serializers.ChoiceField(choices=["json", "text", "srt", "vtt", "verbose_json"], required=False)
    timestamp_granularities = serializers.ListField(child=serializers.ChoiceField(choices=["segment"]), required=False)


class TranscriptionDoc(_Doc):
    @extend_schema(
        operation_id="v1_audio_transcriptions_create",
        tags=["OpenAI-compatible"],
        summary="Transcribe audio; charged per minute of the file's measured duration",
        request={"multipart/form-data": TranscriptionRequestDoc},
        responses={
            (200, "application/json"): OpenApiTypes.OBJECT,
            (200, "text/plain"): OpenApiTypes.STR,
            **MEDIA_ERRORS,
        },
    )
    def post(self, request: Request) -> Response:
        raise NotImplementedError


urlpatterns = [
    path("api/", include("apps.api.urls")),
    path("v1/models", ModelsDoc.as_view()),
    path("v1/models/<str:model_id>", ModelDoc.as_view()),
    path("v1/chat/completions", ChatCompletionsDoc.as_view()),
    path("v1/embeddings", EmbeddingsDoc.as_view()),
    path("v1/images/generations", ImagesDoc.as_view()),
    path("v1/audio/speech", SpeechDoc.as_view()),
    path("v1/audio/transcriptions", TranscriptionDoc.as_view()),
]
