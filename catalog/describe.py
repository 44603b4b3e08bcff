"""Image descriptions: Markdown source in, sanitised HTML out.

Two independent guards, so that one mistake is not enough for a script to
reach another user: markdown-it renders with raw HTML *disabled* (tags in
the source come out as text), and nh3 (the ammonia sanitiser) then keeps
only a short list of formatting tags, only http(s)/mailto links, and adds
``rel="noopener noreferrer nofollow"``.  Pure functions; callers run them
off the event loop for long texts.
"""

from __future__ import annotations

from functools import cache

import nh3
from markdown_it import MarkdownIt

MAX_DESCRIPTION = 20_000

_TAGS = {"p", "br", "hr", "em", "strong", "code", "pre", "blockquote", "ul", "ol", "li",
         "h1", "h2", "h3", "h4", "h5", "h6", "a", "table", "thead", "tbody", "tr", "th",
         "td", "del", "s"}
_ATTRIBUTES = {"a": {"href", "title"}, "th": {"align"}, "td": {"align"}, "ol": {"start"}}


@cache  # one parser for the process: its configuration never changes
def _markdown() -> MarkdownIt:
    # "commonmark" with html off: raw HTML in the source is escaped, not passed on.
    return MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table") \
        .enable("strikethrough")


def render(source: str) -> str:
    """Safe HTML for a Markdown description (empty for an empty one)."""
    if not source.strip():
        return ""
    html = _markdown().render(source)
    return nh3.clean(html, tags=_TAGS, attributes=_ATTRIBUTES,
                     url_schemes={"http", "https", "mailto"},
                     link_rel="noopener noreferrer nofollow", strip_comments=True)
