"""Data shown through Streamlit's Markdown-rendering calls (st.subheader, st.error, st.metric...)
renders as its own characters: a hostile case id is no link, no image, no HTML."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st
from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml

from txnmon.dashboard.widgets import md_code

# CommonMark with GFM's tables, strikethrough and bare-URL autolinks (Streamlit renders GFM)
MARKDOWN = MarkdownIt("gfm-like")

HOSTILE = ["[x](http://evil)", "![i](http://evil/i.png)", "<b>bold</b>", "<img src=x onerror=alert(1)>",
           "C-[click](javascript:alert(1))", "http://evil.example/p?q=1", "www.evil.example", "mail me@evil.example",
           "**loud** _quiet_ ~~gone~~ `code` ``two``", ":red[alarm] :material/warning: $x^2$",
           "# heading\n- item\n> quote", "[ref]\n\n[ref]: http://evil", "<http://evil>", "case\\[x](http://evil)",
           "&lt;b&gt; &amp;", "`", "``x``", " padded ", "`[x](http://evil)`"]


def _shown(text: str) -> str:
    return escapeHtml(re.sub(r"[\r\n]+", " ", text))  # a line break would start a heading or a list


def test_hostile_ids_render_as_their_own_characters_with_no_link_image_or_markup():
    for text in HOSTILE:
        rendered = MARKDOWN.render(md_code(text))
        for tag in ("<a", "<img", "<b>", "<strong", "<em", "<h1", "<ul", "<blockquote", "<del", "<script"):
            assert tag not in rendered, (text, rendered)
        assert rendered == f"<p><code>{_shown(text)}</code></p>\n", (text, rendered)


def test_the_case_subheader_of_a_hostile_id_says_the_id():
    assert '<img src="http://evil/i.png"' in MARKDOWN.render("Case ![i](http://evil/i.png)")  # unescaped
    rendered = MARKDOWN.render(f"Case {md_code('![i](http://evil/i.png)')}")
    assert rendered == "<p>Case <code>![i](http://evil/i.png)</code></p>\n"


def test_blank_values_show_a_dash():
    assert md_code("") == md_code("   ") == "-"


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1).filter(lambda s: s.strip() != ""))
def test_any_text_renders_inline_as_one_code_span_of_itself(text):
    # control characters aside (CommonMark turns NUL into U+FFFD; line breaks are tested above)
    assert MARKDOWN.renderInline(md_code(text)) == f"<code>{_shown(text)}</code>"
