"""Data Docs pages pointed at the vendored assets (pure text; the map is the committed assets.json)."""

from __future__ import annotations

import json
from pathlib import Path

from txnmon.core.datadocs import localize, remote_loads

ASSETS = Path(__file__).resolve().parents[3] / "src" / "txnmon" / "data" / "quality" / "datadocs_assets"
PAGE = """<html><head>
<link rel="stylesheet" href="https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css"/>
<script src="https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js"
  integrity="sha384-abc" crossorigin="anonymous"></script>
<script src="https://cdn.jsdelivr.net/npm/vega@5"></script><script src="https://cdn.jsdelivr.net/npm/vega-lite@5"></script>
</head><body><img src="https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/logo-long.png?d=1"/>
<a href="https://greatexpectations.io">a link is not a load</a></body></html>"""


def test_every_cdn_load_becomes_a_vendored_file_that_exists():
    urls = {u: a["file"] for u, a in json.loads((ASSETS / "assets.json").read_text())["urls"].items()}
    assert len(remote_loads(PAGE)) == 5  # the stylesheet, three scripts, the logo
    page = localize(PAGE, urls, "../static/vendor")
    assert remote_loads(page) == []
    assert 'src="../static/vendor/vega/build/vega.min.js"' in page
    assert 'src="../static/vendor/vega-lite/build/vega-lite.min.js"' in page  # not vega's file + "-lite@5"
    assert "integrity" not in page and "crossorigin" not in page  # SRI attributes would block file:// scripts
    assert '<a href="https://greatexpectations.io">' in page
    for file in urls.values():
        assert (ASSETS / file).is_file(), file
    assert (ASSETS / "txnmon" / "logo.svg").is_file()


def test_the_manifest_names_package_version_and_checksum_of_every_file():
    files = json.loads((ASSETS / "assets.json").read_text())["files"]
    import hashlib

    for f in files:
        assert f["package"] and f["version"][0].isdigit()
        assert hashlib.sha256((ASSETS / f["file"]).read_bytes()).hexdigest() == f["sha256"], f["file"]
