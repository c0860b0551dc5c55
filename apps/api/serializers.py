"""Request validation and response documentation of the OpenAI-compatible endpoints.

The same serializers validate requests (in the async views: pure Python, no database) and
describe the endpoints in the OpenAPI schema, so the docs cannot drift from what is enforced.

Identifiers (`model`, `user`, names and ids) refuse control characters (`IdentifierField`).
Message text and embedding inputs are passed to the model and never stored, so they keep
OpenAI's rules: any string (a tool's output may well carry terminal escapes)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.api.fields import IdentifierField

ROLES = ("system", "developer", "user", "assistant", "tool")
MAX_MESSAGES = 1000
MAX_TEXT = 1_000_000  # characters in one message
MAX_EMBEDDING_INPUTS = 2048
MAX_EMBEDDING_CHARS = 100_000


class _Strict(serializers.Serializer):
    """Validation helpers; `null` counts as absent for optional fields, as in OpenAI's API."""

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, dict):
            raise serializers.ValidationError({"non_field_errors": ["Expected a JSON object."]})
        return super().to_internal_value({k: v for k, v in data.items() if v is not None})


class ContentPartSerializer(_Strict):
    type = serializers.ChoiceField(choices=["text", "image_url", "input_audio", "file"])
    text = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False, max_length=MAX_TEXT)
    image_url = serializers.DictField(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["type"] == "text" and "text" not in attrs:
            raise serializers.ValidationError({"text": ["A text part needs `text`."]})
        if attrs["type"] == "image_url":
            url = (attrs.get("image_url") or {}).get("url")
            if not isinstance(url, str) or not url:
                raise serializers.ValidationError({"image_url": ["An image part needs `image_url.url`."]})
        return attrs


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string"},
            {"type": "array", "items": {"$ref": "#/components/schemas/ContentPartRequest"}},
        ]
    }
)
class MessageContentField(serializers.Field):
    """A string, or a list of content parts."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, str):
            if len(data) > MAX_TEXT:
                raise serializers.ValidationError(f"Content is longer than {MAX_TEXT:,} characters.")
            return data
        if isinstance(data, list):
            parts = ContentPartSerializer(data=data, many=True)
            if not parts.is_valid():
                raise serializers.ValidationError(parts.errors)
            return [dict(part) for part in parts.validated_data]
        raise serializers.ValidationError("Content must be a string or a list of content parts.")

    def to_representation(self, value: Any) -> Any:
        return value


class ToolCallSerializer(_Strict):
    id = IdentifierField(max_length=200)
    type = serializers.ChoiceField(choices=["function"])
    function = serializers.DictField()


class MessageSerializer(_Strict):
    role = serializers.ChoiceField(choices=ROLES)
    content = MessageContentField(required=False)
    name = IdentifierField(required=False, max_length=64)
    tool_calls = ToolCallSerializer(many=True, required=False)
    tool_call_id = IdentifierField(required=False, max_length=200)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        role = attrs["role"]
        if role == "tool" and not attrs.get("tool_call_id"):
            raise serializers.ValidationError({"tool_call_id": ["A tool message needs `tool_call_id`."]})
        if "content" not in attrs and not (role == "assistant" and attrs.get("tool_calls")):
            raise serializers.ValidationError({"content": ["This field is required."]})
        return attrs


class FunctionSerializer(_Strict):
    name = serializers.RegexField(r"^[A-Za-z0-9_-]{1,64}$")
    description = serializers.CharField(required=False, allow_blank=True, max_length=10_000)
    parameters = serializers.DictField(required=False)
    strict = serializers.BooleanField(required=False)


class ToolSerializer(_Strict):
    type = serializers.ChoiceField(choices=["function"])
    function = FunctionSerializer()


class StreamOptionsSerializer(_Strict):
    include_usage = serializers.BooleanField(required=False, default=False)


class ResponseFormatSerializer(_Strict):
    type = serializers.ChoiceField(choices=["text", "json_object", "json_schema"])
    json_schema = serializers.DictField(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["type"] == "json_schema" and not attrs.get("json_schema"):
            raise serializers.ValidationError({"json_schema": ["`json_schema` is required with this type."]})
        return attrs


@extend_schema_field({"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "maxItems": 4}]})
class StopField(serializers.Field):
    def to_internal_value(self, data: Any) -> list[str]:
        values = [data] if isinstance(data, str) else data
        if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
            raise serializers.ValidationError("`stop` must be a non-empty string or a list of them.")
        if len(values) > 4:
            raise serializers.ValidationError("At most 4 stop sequences.")
        return values

    def to_representation(self, value: Any) -> Any:
        return value


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "enum": ["none", "auto", "required"]},
            {
                "type": "object",
                "properties": {
                    "type": {"type": "string", "enum": ["function"]},
                    "function": {"type": "object", "properties": {"name": {"type": "string"}}},
                },
                "required": ["type", "function"],
            },
        ]
    }
)
class ToolChoiceField(serializers.Field):
    def to_internal_value(self, data: Any) -> Any:
        if data in ("none", "auto", "required"):
            return data
        if (
            isinstance(data, dict)
            and data.get("type") == "function"
            and isinstance(data.get("function"), dict)
            and isinstance(data["function"].get("name"), str)
        ):
            return {"type": "function", "function": {"name": data["function"]["name"]}}
        raise serializers.ValidationError('Use "none", "auto", "required" or {"type": "function", "function": {...}}.')

    def to_representation(self, value: Any) -> Any:
        return value


class ChatCompletionRequestSerializer(_Strict):
    model = IdentifierField(max_length=100)
    messages = MessageSerializer(many=True, allow_empty=False, max_length=MAX_MESSAGES)  # type: ignore[call-arg]
    temperature = serializers.FloatField(required=False, min_value=0, max_value=2)
    top_p = serializers.FloatField(required=False, min_value=0, max_value=1)
    max_tokens = serializers.IntegerField(required=False, min_value=1)
    max_completion_tokens = serializers.IntegerField(required=False, min_value=1)
    n = serializers.IntegerField(required=False, min_value=1, max_value=1, help_text="Only 1 is supported.")
    stop = StopField(required=False)
    stream = serializers.BooleanField(required=False, default=False)
    stream_options = StreamOptionsSerializer(required=False)
    tools = ToolSerializer(many=True, required=False, max_length=128)  # type: ignore[call-arg]
    tool_choice = ToolChoiceField(required=False)
    response_format = ResponseFormatSerializer(required=False)
    seed = serializers.IntegerField(required=False)
    presence_penalty = serializers.FloatField(required=False, min_value=-2, max_value=2)
    frequency_penalty = serializers.FloatField(required=False, min_value=-2, max_value=2)
    user = IdentifierField(required=False, max_length=256)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "stream_options" in attrs and not attrs.get("stream"):
            raise serializers.ValidationError({"stream_options": ["Only allowed when `stream` is true."]})
        if "tool_choice" in attrs and not attrs.get("tools"):
            raise serializers.ValidationError({"tool_choice": ["Only allowed when `tools` are given."]})
        return attrs


class EmbeddingsRequestSerializer(_Strict):
    model = IdentifierField(max_length=100)
    input = serializers.JSONField(help_text="A string or a list of strings.")
    encoding_format = serializers.ChoiceField(choices=["float", "base64"], required=False, default="float")
    dimensions = serializers.IntegerField(required=False, min_value=1, max_value=8192)
    user = IdentifierField(required=False, max_length=256)

    def validate_input(self, value: Any) -> list[str]:
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not values:
            raise serializers.ValidationError("`input` must be a non-empty string or a list of strings.")
        if not all(isinstance(v, str) and v for v in values):
            raise serializers.ValidationError(
                "Every input must be a non-empty string (token arrays are not supported)."
            )
        if len(values) > MAX_EMBEDDING_INPUTS:
            raise serializers.ValidationError(f"At most {MAX_EMBEDDING_INPUTS} inputs.")
        if any(len(v) > MAX_EMBEDDING_CHARS for v in values):
            raise serializers.ValidationError(f"An input is longer than {MAX_EMBEDDING_CHARS:,} characters.")
        return values


# ---------------------------------------------------------------------------- responses (docs)


class ErrorDetailSerializer(serializers.Serializer):
    message = serializers.CharField()
    type = serializers.CharField()
    param = serializers.CharField(allow_null=True)
    code = serializers.CharField(allow_null=True)


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


class ModelSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField(default="model")
    created = serializers.IntegerField()
    owned_by = serializers.CharField()


class ModelListSerializer(serializers.Serializer):
    object = serializers.CharField(default="list")
    data = ModelSerializer(many=True)  # type: ignore[assignment]  # the field, not .data


class UsageSerializer(serializers.Serializer):
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()


class ChoiceMessageSerializer(serializers.Serializer):
    role = serializers.CharField()
    content = serializers.CharField(allow_null=True)
    tool_calls = serializers.ListField(child=serializers.DictField(), required=False)


class ChoiceSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    message = ChoiceMessageSerializer()
    finish_reason = serializers.CharField(allow_null=True)


class ChatCompletionSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField(default="chat.completion")
    created = serializers.IntegerField()
    model = serializers.CharField()
    choices = ChoiceSerializer(many=True)
    usage = UsageSerializer()


@extend_schema_field(
    {
        "oneOf": [
            {"type": "array", "items": {"type": "number"}},
            {"type": "string", "description": "Base64 of little-endian float32s (`encoding_format: base64`)."},
        ]
    }
)
class EmbeddingVectorField(serializers.Field):
    def to_representation(self, value: Any) -> Any:
        return value


class EmbeddingSerializer(serializers.Serializer):
    object = serializers.CharField(default="embedding")
    index = serializers.IntegerField()
    embedding = EmbeddingVectorField()


class EmbeddingsUsageSerializer(serializers.Serializer):
    prompt_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()


class EmbeddingsResponseSerializer(serializers.Serializer):
    object = serializers.CharField(default="list")
    data = EmbeddingSerializer(many=True)  # type: ignore[assignment]  # the field, not .data
    model = serializers.CharField()
    usage = EmbeddingsUsageSerializer()


def first_error(errors: Any, path: str = "") -> tuple[str, str]:
    """(param, message) of the first validation error, with a dotted path (`messages.0.role`)."""
    if isinstance(errors, dict):
        for key, value in errors.items():
            name = "" if key == "non_field_errors" else str(key)
            return first_error(value, f"{path}.{name}".strip(".") if name else path)
    if isinstance(errors, list):
        for index, value in enumerate(errors):
            if isinstance(value, dict | list) and value:
                return first_error(value, f"{path}.{index}" if isinstance(value, dict) else path)
            if value:
                return path, str(value)
    return path, str(errors)
