"""Forms of the document pages: query strings and posted text to typed values with clear
messages; the rules live in `apps.documents.services`."""

from __future__ import annotations

from typing import Any

from django import forms

from apps.core.forms import DateRangeFilterForm, ErrorTextMixin
from apps.documents.models import MAX_BODY, MAX_TITLE, Folder, Tag
from apps.documents.selectors import DocumentFilters

UNFILED = "none"


class DocumentFilterForm(DateRangeFilterForm):
    field_order = ["q", "folder", "tag", "author", "start", "end"]
    q = forms.CharField(required=False, max_length=200, label="Search")
    folder = forms.ChoiceField(required=False, error_messages={"invalid_choice": "Unknown folder."})
    tag = forms.ChoiceField(required=False, error_messages={"invalid_choice": "Unknown tag."})
    author = forms.ChoiceField(required=False, label="Owner", error_messages={"invalid_choice": "Unknown person."})

    def __init__(
        self, data: Any = None, *, folders: list[Folder], tags: list[Tag], people: list[Any], **kwargs: Any
    ) -> None:
        super().__init__(data, **kwargs)
        self._folders = {str(f.pk): f for f in folders}
        self._tags = {str(t.pk): t for t in tags}
        self._people = {str(p.pk): p for p in people}
        self._set_choices(
            "folder", [("", "All folders"), (UNFILED, "No folder"), *((k, f.name) for k, f in self._folders.items())]
        )
        self._set_choices("tag", [("", "All tags"), *((k, t.name) for k, t in self._tags.items())])
        self._set_choices("author", [("", "Anyone"), *((k, p.name) for k, p in self._people.items())])

    def _set_choices(self, name: str, choices: list[tuple[str, str]]) -> None:
        field: Any = self.fields[name]
        field.choices = choices

    def filters(self, *, trashed: bool = False) -> DocumentFilters:
        data = self.cleaned_data
        folder = data.get("folder") or ""
        return DocumentFilters(
            query=(data.get("q") or "").strip(),
            folder=self._folders.get(folder),
            unfiled=folder == UNFILED,
            tag=self._tags.get(data.get("tag") or ""),
            author=self._people.get(data.get("author") or ""),
            updated_from=data.get("start"),
            updated_to=data.get("end"),
            trashed=trashed,
        )


class DocumentForm(ErrorTextMixin, forms.Form):
    """The editor's save: the text written on top of `base_version`."""

    base_version = forms.IntegerField(min_value=1, label="Base version", widget=forms.HiddenInput)
    title = forms.CharField(max_length=MAX_TITLE, label="Title")
    body = forms.CharField(
        required=False,
        max_length=MAX_BODY,
        strip=False,
        label="Text (Markdown)",
        widget=forms.Textarea(attrs={"rows": 24, "spellcheck": "true"}),
    )


class _FolderChoice(ErrorTextMixin, forms.Form):
    """A form with a `folder` choice among the workspace's folders (empty: no folder)."""

    folder = forms.ChoiceField(required=False, label="Folder", error_messages={"invalid_choice": "Unknown folder."})

    def __init__(self, data: Any = None, *, folders: list[Folder], **kwargs: Any) -> None:
        super().__init__(data, **kwargs)
        self._folders = {str(f.pk): f for f in folders}
        field: Any = self.fields["folder"]
        field.choices = [("", "No folder"), *((k, f.name) for k, f in self._folders.items())]

    def chosen_folder(self) -> Folder | None:
        return self._folders.get(self.cleaned_data.get("folder") or "")


class OrganiseForm(_FolderChoice):
    tags = forms.CharField(required=False, max_length=1200, label="Tags", help_text="Separate tags with commas.")


class FolderForm(ErrorTextMixin, forms.Form):
    name = forms.CharField(max_length=100, label="Folder name")


class NewDocumentForm(_FolderChoice):
    field_order = ["title", "folder"]
    title = forms.CharField(required=False, max_length=MAX_TITLE, label="Title")
