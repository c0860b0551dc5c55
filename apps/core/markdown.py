"""Markdown (model output in chat, documents) to safe HTML: Markdown with tables and fenced code highlighted by
Pygments, then sanitised with nh3 (an allow-list: no scripts, no event handlers, no javascript:
URLs). Each code block then gets a Copy button, added after sanitising so that the allow-list
stays free of buttons."""

from __future__ import annotations

import nh3

ALLOWED_TAGS = {
    "p",
    "br",
    "hr",
    "strong",
    "em",
    "b",
    "i",
    "code",
    "pre",
    "blockquote",
    "ul",
    "ol",
    "li",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "a",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "span",
    "div",
    "del",
}
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "span": {"class"},
    "div": {"class"},
    "code": {"class"},
    "th": {"align"},
    "td": {"align"},
}


CODE_BLOCK = '<div class="codehilite">'
CODE_BLOCK_WITH_COPY = (
    '<div class="codehilite"><button type="button" class="chat-code-copy" data-copy-code>Copy code</button>'
)


IMAGE_ATTRIBUTES = {"img": {"src", "alt", "title"}}


def render_markdown(text: str, *, images: bool = False) -> str:
    """Safe HTML for `text`. `images`: keep `![alt](src)` images (documents, whose authors are
    the workspace's members; never model output in chat, where an image could track readers)."""
    import markdown

    html = markdown.markdown(
        text,
        extensions=["fenced_code", "codehilite", "tables", "sane_lists"],
        extension_configs={"codehilite": {"guess_lang": False, "css_class": "codehilite"}},
        output_format="html",
    )
    clean = nh3.clean(
        html,
        tags=ALLOWED_TAGS | {"img"} if images else ALLOWED_TAGS,
        attributes={**ALLOWED_ATTRIBUTES, **IMAGE_ATTRIBUTES} if images else ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )
    return clean.replace(CODE_BLOCK, CODE_BLOCK_WITH_COPY)
