"""Text shown through Streamlit's Markdown-rendering calls (st.subheader, st.error, st.metric...)
renders as its own characters: a hostile case id is no link, no image, no HTML."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st
from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml

from txnmon.dashboard.widgets import md_text

# CommonMark with GFM's tables, strikethrough and bare-URL autolinks (Streamlit renders GFM)
MARKDOWN = MarkdownIt("gfm-like")

HOSTILE = ["[x](http://evil)", "![i](http://evil/i.png)", "<b>bold</b>", "<img src=x onerror=alert(1)>",
           "C-[click](javascript:alert(1))", "http://evil.example/p?q=1", "www.evil.example", "mail me@evil.example",
           "**loud** _quiet_ ~~gone~~ `code`", ":red[alarm] :material/warning: $x^2$", "# heading\n- item\n> quote",
           "[ref]\n\n[ref]: http://evil", "<http://evil>", "case\\[x](http://evil)", "&lt;b&gt; &amp;"]


def test_hostile_ids_render_as_their_own_characters_with_no_link_image_or_markup():
    for text in HOSTILE:
        rendered = MARKDOWN.render(md_text(text))
        for tag in ("<a", "<img", "<b>", "<strong", "<em", "<code", "<h1", "<ul", "<blockquote", "<del", "<script"):
            assert tag not in rendered, (text, rendered)
        one_line = re.sub(r"[\r\n]+", " ", text)  # a line break would start a heading or a list
        assert rendered == f"<p>{escapeHtml(one_line)}</p>\n", (text, rendered)


def test_the_case_subheader_of_a_hostile_id_says_the_id():
    assert '<img src="http://evil/i.png"' in MARKDOWN.render("Case ![i](http://evil/i.png)")  # unescaped
    rendered = MARKDOWN.render(f"Case {md_text('![i](http://evil/i.png)')}")
    assert rendered == "<p>Case ![i](http://evil/i.png)</p>\n"


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp")), min_size=1))
def test_any_text_renders_inline_as_itself(text):
    assert MARKDOWN.renderInline(md_text(text)) == escapeHtml(text)
