"""Data Docs that render offline: the pages' CDN URLs replaced by the vendored copies.

Pure text work; the connector (src/txnmon/adapters/great_expectations.py) reads the map
(src/txnmon/data/quality/datadocs_assets/assets.json, written by bin/vendor-datadocs-assets), copies the
files next to the site and rewrites each page with `localize`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

# Great Expectations' logo images (hosted on S3, with a cache-busting query): a local stand-in
GE_IMAGE = re.compile(r"https://great-expectations-web-assets\.s3[^\"'\s)]*")
LOCAL_LOGO = "txnmon/logo.svg"
# subresource-integrity and CORS attributes are for the CDN copies: a browser refuses file:// scripts with them
_SRI = re.compile(r"""\s(?:integrity|crossorigin)(?:=(["'])[^"']*\1)?""")
# what a browser fetches by itself while rendering: script and img sources, stylesheet links
_LOADED = re.compile(r"""<(?:script|img)\b[^>]*?\bsrc=["']([^"']+)["']|<link\b[^>]*?\bhref=["']([^"']+)["']""",
                     re.I)


def localize(html: str, urls: Mapping[str, str], prefix: str) -> str:
    """Every known CDN URL -> `prefix`/its vendored file; the GE logos -> a local image."""
    for url in sorted(urls, key=len, reverse=True):  # longest first: no URL is a prefix of a longer one's result
        html = html.replace(url, f"{prefix}/{urls[url]}")
    html = GE_IMAGE.sub(f"{prefix}/{LOCAL_LOGO}", html)
    return re.sub(r"<(?:script|link)\b[^>]*>", lambda tag: _SRI.sub("", tag.group(0)), html)


def remote_loads(html: str) -> list[str]:
    """The http(s) URLs a browser would fetch to render the page (links to follow are not counted)."""
    return [u for m in _LOADED.finditer(html) for u in m.groups() if u and re.match(r"https?://", u)]
