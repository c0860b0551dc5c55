"""The document pages: the list (search, folders, tags, owner, dates), the editor (Markdown with a
live preview; saves through `static/js/documents.js` or a plain form), the history (any version,
a diff between any two, restore), the trash, folders, sharing, and the read-only public page.

Every id is looked up through the request's workspace (another workspace's id is 404). A save
based on an old version is never written: the page shows a merge view instead (theirs beside
yours, with the differences), and the JSON answer is 409 `version_conflict`."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.accounts.models import User
from apps.core.http import WorkspaceRequest
from apps.core.markdown import render_markdown
from apps.documents.diff import text_diff
from apps.documents.exceptions import DocumentError, VersionConflict
from apps.documents.forms import DocumentFilterForm, DocumentForm, FolderForm, NewDocumentForm, OrganiseForm
from apps.documents.models import TRASH_DAYS, Document, DocumentVersion, Folder
from apps.documents.selectors import (
    document_list,
    document_version,
    document_versions,
    folders_with_counts,
    shared_document,
    trash_count,
    workspace_tags,
)
from apps.documents.services import (
    document_create,
    document_delete,
    document_duplicate,
    document_organise,
    document_save,
    document_share,
    document_trash,
    document_untrash,
    document_version_restore,
    folder_create,
    folder_delete,
    folder_rename,
    may_manage_content,
)
from apps.workspaces.decorators import workspace_required
from apps.workspaces.roles import Perm
from apps.workspaces.scoping import get_for_workspace_or_404

PAGE_SIZE = 25
VERSIONS_PAGE_SIZE = 50


def _document(request: WorkspaceRequest, document_id: int, *, trashed: bool | None = False) -> Document:
    qs = Document.objects.select_related("workspace", "owner", "last_editor", "folder")
    if trashed is not None:
        qs = qs.filter(deleted_at__isnull=not trashed)
    return get_for_workspace_or_404(qs, request.workspace, pk=document_id)


def _people(request: WorkspaceRequest) -> list[Any]:
    return list(
        User.objects.filter(memberships__workspace=request.workspace).order_by("display_name", "email").distinct()
    )


def _list_page(request: WorkspaceRequest, *, trashed: bool) -> HttpResponse:
    workspace = request.workspace
    folders = list(folders_with_counts(workspace=workspace))
    tags = list(workspace_tags(workspace=workspace))
    form = DocumentFilterForm(request.GET, folders=folders, tags=tags, people=_people(request))
    context: dict[str, Any] = {
        "form": form,
        "folders": folders,
        "trashed": trashed,
        "trash_count": trash_count(workspace=workspace),
        "trash_days": TRASH_DAYS,
        "new_form": NewDocumentForm(folders=folders, initial={"folder": request.GET.get("folder", "")}),
        "folder_form": FolderForm(),
        "can_manage": may_manage_content(workspace=workspace, user=request.user),
    }
    if not form.is_valid():
        context["filter_error"] = form.error_text()
        return render(request, "documents/list.html", context, status=400)
    filters = form.filters(trashed=trashed)
    page = Paginator(document_list(workspace=workspace, filters=filters), PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context.update(
        page_obj=page,
        documents=page.object_list,
        filters=filters,
        filtered=any(form.cleaned_data.get(name) for name in form.fields),
        query_string=query.urlencode(),
    )
    return render(request, "documents/list.html", context)


@workspace_required(Perm.USE)
@require_GET
def document_index(request: WorkspaceRequest) -> HttpResponse:
    return _list_page(request, trashed=False)


@workspace_required(Perm.USE)
@require_GET
def document_trash_list(request: WorkspaceRequest) -> HttpResponse:
    return _list_page(request, trashed=True)


@workspace_required(Perm.USE)
@require_POST
def document_new(request: WorkspaceRequest) -> HttpResponse:
    folders = list(Folder.objects.filter(workspace=request.workspace))
    form = NewDocumentForm(request.POST, folders=folders)
    if not form.is_valid():
        messages.error(request, form.error_text())
        return redirect("documents:list")
    title = form.cleaned_data["title"] or "Untitled document"
    document = document_create(workspace=request.workspace, user=request.user, title=title, folder=form.chosen_folder())
    return redirect("documents:edit", document_id=document.pk)


def _editor(
    request: WorkspaceRequest,
    document: Document,
    *,
    form: DocumentForm | None = None,
    conflict: VersionConflict | None = None,
    status: int = 200,
) -> HttpResponse:
    folders = list(Folder.objects.filter(workspace=request.workspace))
    context: dict[str, Any] = {
        "document": document,
        "form": form
        or DocumentForm(initial={"title": document.title, "body": document.body, "base_version": document.version}),
        "organise_form": OrganiseForm(
            folders=folders,
            initial={
                "folder": str(document.folder_id or ""),
                "tags": ", ".join(t.name for t in document.tags.all()),
            },
        ),
        "preview": render_markdown(document.body, images=True),
        "can_manage": document.owner_id == request.user.pk
        or may_manage_content(workspace=request.workspace, user=request.user),
        "share_url": request.build_absolute_uri(reverse("documents:shared", args=[document.share_token]))
        if document.share_token
        else "",
    }
    if conflict is not None and form is not None:
        mine = form.data.get("body", "")
        context.update(
            conflict=conflict,
            mine_title=form.data.get("title", ""),
            mine=mine,
            diff=text_diff(document.body, mine),
        )
    return render(request, "documents/editor.html", context, status=status)


def _wants_json(request: WorkspaceRequest) -> bool:
    return request.headers.get("X-Requested-With") == "fetch"


def _saved_json(document: Document) -> JsonResponse:
    return JsonResponse(
        {
            "id": document.pk,
            "title": document.title,
            "version": document.version,
            "updated_at": document.updated_at.isoformat(),
        }
    )


@workspace_required(Perm.USE)
@require_http_methods(["GET", "POST"])
def document_edit(request: WorkspaceRequest, document_id: int) -> HttpResponse:
    """GET: the editor. POST: save (`base_version`, `title`, `body`); the page's script asks
    for JSON (`X-Requested-With: fetch`): the new version, or 409 with the current one."""
    document = _document(request, document_id)
    if request.method == "GET":
        return _editor(request, document)
    form = DocumentForm(request.POST)
    if not form.is_valid():
        if _wants_json(request):
            return JsonResponse({"error": {"message": form.error_text(), "code": "invalid_document"}}, status=400)
        return _editor(request, document, form=form, status=400)
    data = form.cleaned_data
    try:
        saved = document_save(
            document=document,
            user=request.user,
            base_version=data["base_version"],
            title=data["title"],
            body=data["body"],
            source=DocumentVersion.Source.MERGE if request.POST.get("merge") else DocumentVersion.Source.EDIT,
        )
    except VersionConflict as exc:
        if _wants_json(request):
            return JsonResponse(
                {"error": {"message": exc.message, "code": exc.code, **exc.details()}}, status=exc.status_code
            )
        document.refresh_from_db()
        return _editor(request, document, form=form, conflict=exc, status=409)
    except DocumentError as exc:
        if _wants_json(request):
            return JsonResponse({"error": {"message": exc.message, "code": exc.code}}, status=exc.status_code)
        form.add_error(None, exc.message)
        return _editor(request, document, form=form, status=exc.status_code)
    if _wants_json(request):
        return _saved_json(saved)
    messages.success(request, f"Saved (version {saved.version}).")
    return redirect("documents:edit", document_id=saved.pk)


@workspace_required(Perm.USE)
@require_POST
def document_preview(request: WorkspaceRequest, document_id: int) -> HttpResponse:
    """The sanitised HTML of the posted Markdown (`body`), for the editor's live preview."""
    _document(request, document_id)
    return HttpResponse(render_markdown(request.POST.get("body", "")[:500_000], images=True))


@workspace_required(Perm.USE)
@require_POST
def document_organise_view(request: WorkspaceRequest, document_id: int) -> HttpResponse:
    document = _document(request, document_id)
    form = OrganiseForm(request.POST, folders=list(Folder.objects.filter(workspace=request.workspace)))
    if not form.is_valid():
        messages.error(request, form.error_text())
    else:
        try:
            document_organise(
                document=document, user=request.user, folder=form.chosen_folder(), tags=form.cleaned_data["tags"]
            )
        except DocumentError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, "Folder and tags saved.")
    return redirect("documents:edit", document_id=document.pk)


@workspace_required(Perm.USE)
@require_POST
def document_duplicate_view(request: WorkspaceRequest, document_id: int) -> HttpResponse:
    copy = document_duplicate(document=_document(request, document_id), user=request.user)
    messages.success(request, "Document duplicated.")
    return redirect("documents:edit", document_id=copy.pk)


@workspace_required(Perm.USE)
@require_POST
def document_trash_view(request: WorkspaceRequest, document_id: int) -> HttpResponse:
    document = document_trash(document=_document(request, document_id), user=request.user)
    messages.success(request, f"“{document.title}” moved to the trash. You can restore it for {TRASH_DAYS} days.")
    return redirect("documents:list")


@workspace_required(Perm.USE)
@require_POST
def document_untrash_view(request: WorkspaceRequest, document_id: int) -> HttpResponse:
    document = document_untrash(document=_document(request, document_id, trashed=True), user=request.user)
    messages.success(request, f"“{document.title}” restored.")
    return redirect("documents:edit", document_id=document.pk)


@workspace_required(Perm.USE)
@require_POST
def document_delete_view(request: WorkspaceRequest, document_id: int) -> HttpResponse:
    document = _document(request, document_id, trashed=True)
    title = document.title
    document_delete(document=document, user=request.user)
    messages.success(request, f"“{title}” deleted for good.")
    return redirect("documents:trash")


@workspace_required(Perm.USE)
@require_POST
def document_share_view(request: WorkspaceRequest, document_id: int) -> HttpResponse:
    shared = request.POST.get("shared") == "1"
    document_share(document=_document(request, document_id), user=request.user, shared=shared)
    messages.success(
        request, "Public link created: anyone with it can read this document." if shared else "Public link turned off."
    )
    return redirect("documents:edit", document_id=document_id)


# ---------------------------------------------------------------------------- history


@workspace_required(Perm.USE)
@require_GET
def document_history(request: WorkspaceRequest, document_id: int) -> HttpResponse:
    document = _document(request, document_id, trashed=None)
    page = Paginator(document_versions(document=document), VERSIONS_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "documents/history.html",
        {"document": document, "page_obj": page, "versions": page.object_list, "query_string": ""},
    )


def _version(document: Document, number: int) -> DocumentVersion:
    version = document_version(document=document, number=number)
    if version is None:
        raise Http404("No such version.")
    return version


@workspace_required(Perm.USE)
@require_GET
def document_version_view(request: WorkspaceRequest, document_id: int, number: int) -> HttpResponse:
    document = _document(request, document_id, trashed=None)
    version = _version(document, number)
    return render(
        request,
        "documents/version.html",
        {"document": document, "version": version, "html": render_markdown(version.body, images=True)},
    )


def _number(value: str | None, default: int) -> int:
    try:
        return int(value) if value else default
    except ValueError:
        raise DocumentError("Pick versions by their number.", param="version") from None


@workspace_required(Perm.USE)
@require_GET
def document_diff(request: WorkspaceRequest, document_id: int) -> HttpResponse:
    """The differences from version `from` to version `to` (default: the one before the current
    version, and the current one)."""
    document = _document(request, document_id, trashed=None)
    numbers = list(
        DocumentVersion.objects.filter(document=document).order_by("-number").values_list("number", flat=True)
    )
    newer = _number(request.GET.get("to"), numbers[0])
    older = _number(request.GET.get("from"), numbers[1] if len(numbers) > 1 else numbers[0])
    old, new = _version(document, older), _version(document, newer)
    return render(
        request,
        "documents/diff.html",
        {
            "document": document,
            "old": old,
            "new": new,
            "numbers": numbers,
            "diff": text_diff(old.body, new.body),
            "title_changed": old.title != new.title,
            "old_label": f"Version {old.number}",
            "new_label": f"Version {new.number}",
        },
    )


@workspace_required(Perm.USE)
@require_POST
def document_version_restore_view(request: WorkspaceRequest, document_id: int, number: int) -> HttpResponse:
    document = _document(request, document_id)
    restored = document_version_restore(document=document, number=number, user=request.user)
    messages.success(request, f"Version {number} restored as version {restored.version}.")
    return redirect("documents:edit", document_id=document.pk)


# ---------------------------------------------------------------------------- folders


def _folder(request: WorkspaceRequest, folder_id: int) -> Folder:
    return get_for_workspace_or_404(Folder.objects.select_related("workspace"), request.workspace, pk=folder_id)


@workspace_required(Perm.USE)
@require_POST
def folder_new(request: WorkspaceRequest) -> HttpResponse:
    form = FolderForm(request.POST)
    if not form.is_valid():
        messages.error(request, form.error_text())
        return redirect("documents:list")
    try:
        folder = folder_create(workspace=request.workspace, user=request.user, name=form.cleaned_data["name"])
    except DocumentError as exc:
        messages.error(request, exc.message)
        return redirect("documents:list")
    messages.success(request, f"Folder “{folder.name}” created.")
    return redirect(f"{reverse('documents:list')}?folder={folder.pk}")


@workspace_required(Perm.USE)
@require_POST
def folder_rename_view(request: WorkspaceRequest, folder_id: int) -> HttpResponse:
    folder = _folder(request, folder_id)
    form = FolderForm(request.POST)
    if not form.is_valid():
        messages.error(request, form.error_text())
    else:
        try:
            folder_rename(folder=folder, user=request.user, name=form.cleaned_data["name"])
        except DocumentError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, "Folder renamed.")
    return redirect(f"{reverse('documents:list')}?folder={folder.pk}")


@workspace_required(Perm.USE)
@require_POST
def folder_delete_view(request: WorkspaceRequest, folder_id: int) -> HttpResponse:
    folder = _folder(request, folder_id)
    name = folder.name
    held = folder_delete(folder=folder, user=request.user)
    messages.success(request, f"Folder “{name}” deleted; its {held} document(s) kept, out of any folder.")
    return redirect("documents:list")


# ---------------------------------------------------------------------------- public link


@require_GET
def document_shared(request: Any, token: str) -> HttpResponse:
    """The read-only page of a shared document: anyone with the link, signed in or not."""
    document = shared_document(token)
    if document is None:
        raise Http404("This link is not shared any more.")
    response = render(
        request,
        "documents/shared.html",
        {"document": document, "html": render_markdown(document.body, images=True)},
    )
    response["X-Robots-Tag"] = "noindex, nofollow"
    response["Referrer-Policy"] = "no-referrer"
    return response
