"""The chat pages: conversation list (search, filters, new chat), one conversation (messages,
composer driven by static/js/chat.js over the WebSocket), its settings, delete and export.
Every id is looked up through the request's workspace, so another workspace's id is 404."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.chat.exceptions import ChatError
from apps.chat.forms import (
    ConversationFilterForm,
    ModelSwitchForm,
    NewConversationForm,
    RenameForm,
    SettingsForm,
)
from apps.chat.models import Conversation
from apps.chat.selectors import (
    chat_models,
    conversation_filter_models,
    conversation_list,
    conversation_messages,
)
from apps.chat.services import (
    conversation_create,
    conversation_delete,
    conversation_export,
    conversation_pin,
    conversation_update,
)
from apps.core.http import WorkspaceRequest
from apps.workspaces.decorators import workspace_required
from apps.workspaces.exceptions import WorkspacePermissionDenied
from apps.workspaces.roles import Perm
from apps.workspaces.scoping import get_for_workspace_or_404

PAGE_SIZE = 25


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
    new_form = NewConversationForm(request.POST if request.method == "POST" else None, models=models)
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
    models = chat_models(workspace=request.workspace)
    if conversation.model is not None and conversation.model not in models:
        models = [conversation.model, *models]
    model_id = conversation.model.model_id if conversation.model else None
    context = {
        "conversation": conversation,
        "rows": conversation_messages(conversation=conversation),
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
    }
    return render(request, "chat/detail.html", context, status=status)


@workspace_required(Perm.USE)
@require_GET
def chat_detail(request: WorkspaceRequest, conversation_id: int) -> HttpResponse:
    return _detail_page(request, _conversation(request, conversation_id))


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
