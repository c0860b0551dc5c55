"""The chat pages: conversation list (search, filters, new chat), one conversation (messages,
composer driven by static/js/chat.js over the WebSocket), its settings, delete and export.
Every id is looked up through the request's workspace, so another workspace's id is 404."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.chat.exceptions import ChatError
from apps.chat.forms import (
    ConversationFilterForm,
    ModelSwitchForm,
    NewConversationForm,
    RenameForm,
    SettingsForm,
)
from apps.chat.fragments import attachment_html, message_html
from apps.chat.models import Attachment, Conversation, Message
from apps.chat.selectors import (
    chat_model_choices,
    chat_models,
    conversation_filter_models,
    conversation_list,
    conversation_messages,
    pending_attachments,
)
from apps.chat.services import (
    chat_attachment_create,
    chat_attachment_delete,
    chat_default_model,
    conversation_create,
    conversation_delete,
    conversation_export,
    conversation_pin,
    conversation_update,
    message_feedback_set,
)
from apps.core.http import WorkspaceRequest
from apps.presets.pages import preset_from_request
from apps.workspaces.decorators import workspace_required
from apps.workspaces.exceptions import WorkspacePermissionDenied
from apps.workspaces.roles import Perm
from apps.workspaces.scoping import get_for_workspace_or_404

PAGE_SIZE = 25
MAX_PROMPT_PREFILL = 20_000


def _conversation(request: WorkspaceRequest, conversation_id: int) -> Conversation:
    return get_for_workspace_or_404(
        Conversation.objects.select_related("model", "model__provider", "workspace"),
        request.workspace,
        pk=conversation_id,
    )


def _forbidden(request: WorkspaceRequest, reason: str) -> HttpResponse:
    return render(request, "errors/403.html", {"reason": reason}, status=403)


@workspace_required(Perm.USE)
@require_http_methods(["GET", "POST"])
def chat_list(request: WorkspaceRequest) -> HttpResponse:
    models = chat_models(workspace=request.workspace)
    # The user's default model (profile) is preselected when the workspace may use it.
    preferred = request.user.preference("default_model")
    new_form = NewConversationForm(
        request.POST if request.method == "POST" else None,
        models=models,
        initial={"model": preferred if any(m.model_id == preferred for m in models) else None},
    )
    status = 200
    if request.method == "POST":
        if new_form.is_valid():
            try:
                conversation = conversation_create(
                    workspace=request.workspace,
                    user=request.user,
                    model=new_form.cleaned_data["model"],
                    system_prompt=new_form.cleaned_data["system_prompt"],
                )
            except WorkspacePermissionDenied as exc:
                return _forbidden(request, exc.message)
            except ChatError as exc:
                new_form.add_error(None, exc.message)
            else:
                return redirect("chat:detail", conversation_id=conversation.pk)
        status = 400
    form = ConversationFilterForm(request.GET, models=conversation_filter_models())
    context: dict[str, Any] = {"form": form, "new_form": new_form, "has_models": bool(models)}
    if not form.is_valid():
        context["filter_error"] = form.error_text()
        return render(request, "chat/list.html", context, status=400)
    qs = conversation_list(workspace=request.workspace, filters=form.filters())
    page = Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context.update(
        page_obj=page,
        conversations=page.object_list,
        filtered=any(form.cleaned_data.get(name) for name in form.fields),
        query_string=query.urlencode(),
    )
    return render(request, "chat/list.html", context, status=status)


def _detail_page(
    request: WorkspaceRequest,
    conversation: Conversation,
    *,
    status: int = 200,
    error: str = "",
    **forms_kw: Any,
) -> HttpResponse:
    choices = chat_model_choices(workspace=request.workspace)
    models = [choice.model for choice in choices]
    model_id = conversation.model.model_id if conversation.model else None
    context = {
        "model_choices": choices,
        # The conversation's model, when the plan no longer includes it: shown, not offered.
        "model_unavailable": conversation.model is not None and conversation.model not in models,
        "conversation": conversation,
        "rows": conversation_messages(conversation=conversation),
        "pending_attachments": pending_attachments(conversation=conversation),
        "error": error,
        "rename_form": forms_kw.get("rename_form") or RenameForm(initial={"title": conversation.title}),
        "model_form": forms_kw.get("model_form") or ModelSwitchForm(models=models, initial={"model": model_id}),
        "settings_form": forms_kw.get("settings_form")
        or SettingsForm(
            initial={
                "system_prompt": conversation.system_prompt,
                "temperature": conversation.temperature,
                "max_tokens": conversation.max_tokens,
            }
        ),
        "ws_path": f"/ws/chat/{conversation.pk}/",
        "prompt": forms_kw.get("prompt", ""),
    }
    return render(request, "chat/detail.html", context, status=status)


@workspace_required(Perm.USE)
@require_GET
def chat_detail(request: WorkspaceRequest, conversation_id: int) -> HttpResponse:
    # `prompt`: text to start the composer with (a preset filled in), sent only when the user sends it.
    prompt = request.GET.get("prompt", "")[:MAX_PROMPT_PREFILL]
    return _detail_page(request, _conversation(request, conversation_id), prompt=prompt)


@workspace_required(Perm.USE)
@require_POST
def chat_from_preset(request: WorkspaceRequest, preset_id: int) -> HttpResponse:
    """A preset filled in (`apps.presets`) starts a conversation with its defaults (its model when
    the plan allows it, its system prompt and temperature) and its prompt in the composer."""
    rendered = preset_from_request(request, preset_id)
    if isinstance(rendered, HttpResponse):
        return rendered
    usable = chat_models(workspace=request.workspace)
    model = rendered.model if rendered.model in usable else chat_default_model(request.workspace, request.user)
    if model is None:
        raise ChatError("No chat model is available right now.", param="model")
    conversation = conversation_create(
        workspace=request.workspace,
        user=request.user,
        model=model,
        title=rendered.preset.name,
        system_prompt=rendered.system_prompt,
        temperature=rendered.temperature,
    )
    query = urlencode({"prompt": rendered.prompt[:MAX_PROMPT_PREFILL]})
    return redirect(f"{reverse('chat:detail', args=[conversation.pk])}?{query}")


def _apply(
    request: WorkspaceRequest,
    conversation: Conversation,
    form: Any,
    form_key: str,
    fields: dict[str, Any] | None,
    success: str,
) -> HttpResponse:
    if fields is None:
        return _detail_page(request, conversation, status=400, error=form.error_text(), **{form_key: form})
    try:
        conversation_update(conversation=conversation, acting_user=request.user, **fields)
    except WorkspacePermissionDenied as exc:
        return _forbidden(request, exc.message)
    except ChatError as exc:
        conversation.refresh_from_db()
        return _detail_page(request, conversation, status=400, error=exc.message, **{form_key: form})
    messages.success(request, success)
    return redirect("chat:detail", conversation_id=conversation.pk)


@workspace_required(Perm.USE)
@require_POST
def chat_rename(request: WorkspaceRequest, conversation_id: int) -> HttpResponse:
    conversation = _conversation(request, conversation_id)
    form = RenameForm(request.POST)
    fields = {"title": form.cleaned_data["title"]} if form.is_valid() else None
    return _apply(request, conversation, form, "rename_form", fields, "Conversation renamed.")


@workspace_required(Perm.USE)
@require_POST
def chat_switch_model(request: WorkspaceRequest, conversation_id: int) -> HttpResponse:
    conversation = _conversation(request, conversation_id)
    form = ModelSwitchForm(request.POST, models=chat_models(workspace=request.workspace))
    fields = {"model": form.cleaned_data["model"]} if form.is_valid() else None
    return _apply(request, conversation, form, "model_form", fields, "Model switched.")


@workspace_required(Perm.USE)
@require_POST
def chat_settings(request: WorkspaceRequest, conversation_id: int) -> HttpResponse:
    conversation = _conversation(request, conversation_id)
    form = SettingsForm(request.POST)
    fields = dict(form.cleaned_data) if form.is_valid() else None
    return _apply(request, conversation, form, "settings_form", fields, "Settings saved.")


@workspace_required(Perm.USE)
@require_POST
def chat_pin(request: WorkspaceRequest, conversation_id: int) -> HttpResponse:
    """Pin (`pinned=1`) or unpin the conversation, then show it (htmx: refresh the page)."""
    conversation = _conversation(request, conversation_id)
    try:
        conversation_pin(conversation=conversation, pinned=request.POST.get("pinned") == "1", acting_user=request.user)
    except WorkspacePermissionDenied as exc:
        return _forbidden(request, exc.message)
    if request.headers.get("HX-Request"):
        return HttpResponse(status=204, headers={"HX-Refresh": "true"})
    return redirect("chat:detail", conversation_id=conversation.pk)


@workspace_required(Perm.USE)
@require_POST
def chat_feedback(request: WorkspaceRequest, conversation_id: int, message_id: int) -> HttpResponse:
    """Rate an answer: `value` up, down, or empty to take the rating back. The page's script
    gets the message's new HTML (`X-Requested-With: fetch`); a plain form goes back to the page."""
    conversation = _conversation(request, conversation_id)
    message = get_for_workspace_or_404(
        Message.objects.filter(conversation=conversation), request.workspace, pk=message_id
    )
    try:
        message_feedback_set(message=message, value=request.POST.get("value", ""), acting_user=request.user)
    except WorkspacePermissionDenied as exc:
        return _forbidden(request, exc.message)
    except ChatError as exc:
        return HttpResponse(exc.message, status=400, content_type="text/plain; charset=utf-8")
    if request.headers.get("X-Requested-With") == "fetch":
        return HttpResponse(message_html(message))
    return redirect("chat:detail", conversation_id=conversation.pk)


def _text_response(message: str, status: int) -> HttpResponse:
    return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")


@workspace_required(Perm.USE)
@require_POST
def chat_attach(request: WorkspaceRequest, conversation_id: int) -> HttpResponse:
    """Upload a file (`file`) for the next message: answers its chip (HTML carrying its id in
    `data-attachment-id`, for the page's script) with 201, or why it was refused as text."""
    conversation = _conversation(request, conversation_id)
    upload = request.FILES.get("file")
    if upload is None:
        return _text_response("Choose a file to attach.", 400)
    try:
        attachment = chat_attachment_create(
            conversation=conversation, user=request.user, name=upload.name or "file", file=upload
        )
    except WorkspacePermissionDenied as exc:
        return _forbidden(request, exc.message)
    except ChatError as exc:
        return _text_response(exc.message, exc.status_code)
    return HttpResponse(attachment_html(attachment), status=201)


def _attachment(request: WorkspaceRequest, conversation_id: int, attachment_id: int) -> Attachment:
    conversation = _conversation(request, conversation_id)
    return get_for_workspace_or_404(
        Attachment.objects.filter(conversation=conversation), request.workspace, pk=attachment_id
    )


@workspace_required(Perm.USE)
@require_GET
def chat_attachment(request: WorkspaceRequest, conversation_id: int, attachment_id: int) -> HttpResponse:
    """A file of the conversation: an image shown inline, a text file downloaded as text."""
    attachment = _attachment(request, conversation_id, attachment_id)
    is_image = attachment.kind == Attachment.Kind.IMAGE
    if is_image:
        response = HttpResponse(bytes(attachment.data), content_type=attachment.content_type)
    else:
        response = HttpResponse(attachment.text, content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = content_disposition_header(not is_image, attachment.name) or ""
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'; sandbox"
    response["Cache-Control"] = "private, max-age=3600"
    return response


@workspace_required(Perm.USE)
@require_POST
def chat_attachment_remove(request: WorkspaceRequest, conversation_id: int, attachment_id: int) -> HttpResponse:
    """Remove a file that was not sent yet (204 for the page's script)."""
    attachment = _attachment(request, conversation_id, attachment_id)
    try:
        chat_attachment_delete(attachment=attachment, acting_user=request.user)
    except WorkspacePermissionDenied as exc:
        return _forbidden(request, exc.message)
    except ChatError as exc:
        return _text_response(exc.message, exc.status_code)
    if request.headers.get("X-Requested-With") == "fetch":
        return HttpResponse(status=204)
    return redirect("chat:detail", conversation_id=conversation_id)


@workspace_required(Perm.USE)
@require_POST
def chat_delete(request: WorkspaceRequest, conversation_id: int) -> HttpResponse:
    conversation = _conversation(request, conversation_id)
    try:
        conversation_delete(conversation=conversation, acting_user=request.user)
    except WorkspacePermissionDenied as exc:
        return _forbidden(request, exc.message)
    messages.success(request, "Conversation deleted.")
    return redirect("chat:list")


@workspace_required(Perm.USE)
@require_GET
def chat_export(request: WorkspaceRequest, conversation_id: int) -> HttpResponse:
    conversation = _conversation(request, conversation_id)
    try:
        export = conversation_export(
            conversation=conversation, fmt=request.GET.get("format", "md"), acting_user=request.user
        )
    except WorkspacePermissionDenied as exc:
        return _forbidden(request, exc.message)
    except ChatError as exc:
        return HttpResponse(exc.message, status=400, content_type="text/plain; charset=utf-8")
    response = HttpResponse(export.content, content_type=export.content_type)
    response["Content-Disposition"] = f'attachment; filename="{export.filename}"'
    return response


@workspace_required(Perm.USE)
@require_GET
def chat_sidebar(request: WorkspaceRequest) -> HttpResponse:
    """The sidebar's conversation list as an htmx fragment: `q` filters it as the user types;
    `current` (a conversation id) keeps the open conversation marked."""
    # Imported here, not at the top: this view was appended to a module others are editing.
    from apps.chat.selectors import sidebar_conversations, sidebar_groups

    q = request.GET.get("q", "")[:200]
    current = request.GET.get("current", "")
    conversations = sidebar_conversations(workspace=request.workspace, q=q)
    context = {
        "sidebar_groups": sidebar_groups(conversations),
        "sidebar_query": q.strip(),
        "sidebar_current": int(current) if current.isdigit() else None,
    }
    return render(request, "chat/_sidebar_list.html", context)
