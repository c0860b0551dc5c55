"""CSV downloads: one cell rule (no cell a spreadsheet would run as a formula) and one streamed
response, for every export (the audit log, usage history, redemption codes)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from typing import Any

from django.http import StreamingHttpResponse

# Spreadsheet programs run a cell that starts with one of these as a formula; labels, names,
# metadata and user agents are user-controlled (a workspace named "=HYPERLINK(...)"). A leading
# apostrophe makes the cell text (OWASP "CSV injection").
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> str:
    """`value` as the text of one cell: empty for None, ISO 8601 for dates, sorted JSON for
    dicts and lists, and never the start of a formula."""
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        text = value.isoformat()
    elif isinstance(value, dict | list):
        text = json.dumps(value, sort_keys=True, default=str)
    else:
        text = str(value)
    return "'" + text if text.startswith(FORMULA_TRIGGERS) else text


class _Echo:
    """A file-like object whose `write` hands the line back, so csv.writer feeds a generator."""

    def write(self, value: str) -> str:
        return value


def csv_lines(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> Iterator[str]:
    """The header line, then one line per row, each cell through `csv_cell`."""
    writer = csv.writer(_Echo())
    yield writer.writerow(list(header))
    for row in rows:
        yield writer.writerow([csv_cell(value) for value in row])


def csv_response(*, filename: str, header: Iterable[str], rows: Iterable[Iterable[Any]]) -> StreamingHttpResponse:
    """A CSV attachment streamed row by row: `rows` (a generator, or a queryset's `iterator()`)
    is read while the response is sent, so an export of any size holds one chunk in memory."""
    response = StreamingHttpResponse(csv_lines(header, rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
