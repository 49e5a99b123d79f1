"""Great Expectations 1.x: validate a DataFrame against resolved suite specs, Data Docs as HTML.

The only module that imports great_expectations (lazily: it takes seconds to import, and DAG
files must parse fast).
"""

from __future__ import annotations

import functools
import html
import json
import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from txnmon.core.datadocs import localize
from txnmon.core.quality import ExpectationOutcome, SuiteOutcome

ASSETS = Path(__file__).resolve().parents[1] / "data" / "quality" / "datadocs_assets"
VENDOR = Path("static") / "vendor"  # under the site's root, next to GE's own static/


@functools.cache
def _context(reports_dir: str) -> Any:
    # Imported lazily: great_expectations takes seconds to import and DAG parsing must stay fast.
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    logging.getLogger("great_expectations").setLevel(logging.WARNING)  # its INFO lines are about temp dirs
    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    site = {"class_name": "SiteBuilder", "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": reports_dir}}
    if "local_site" in ctx.list_data_docs_sites():
        ctx.update_data_docs_site("local_site", site)
    else:
        ctx.add_data_docs_site("local_site", site)
    return ctx


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def check_dataframe(suite_name: str, frame: pd.DataFrame, specs: Sequence[Mapping[str, Any]],
                    reports_dir: Path) -> SuiteOutcome:
    """Validate `frame` against resolved specs; Data Docs go to `reports_dir`."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    ctx = _context(str(reports_dir))
    expectations = [getattr(gxe, _camel(s["expectation"]))(**s["kwargs"], severity=s["severity"]) for s in specs]
    suite = ctx.suites.add_or_update(gx.ExpectationSuite(name=suite_name, expectations=expectations))
    batch = (ctx.data_sources.add_or_update_pandas(f"{suite_name}_source")
             .add_dataframe_asset(suite_name).add_batch_definition_whole_dataframe("whole"))
    definition = ctx.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=f"{suite_name}_validation", data=batch, suite=suite))
    checkpoint = ctx.checkpoints.add_or_update(gx.Checkpoint(
        name=f"{suite_name}_checkpoint", validation_definitions=[definition], actions=[],
        result_format={"result_format": "SUMMARY"}))
    result = checkpoint.run(batch_parameters={"dataframe": frame})
    outcome = SuiteOutcome(suite_name, len(frame), bool(result.success), False)
    for run_id, validation in result.run_results.items():
        for r in validation.results:
            cfg = r.expectation_config
            count = r.result.get("unexpected_count") if r.result else None
            error = None
            if r.exception_info and any(v.get("raised_exception") for v in _exceptions(r.exception_info)):
                error = "; ".join(str(v.get("exception_message")) for v in _exceptions(r.exception_info))[:300]
            severity = getattr(cfg.severity, "value", str(cfg.severity))
            ok = bool(r.success) and error is None
            outcome.outcomes.append(ExpectationOutcome(cfg.type, cfg.kwargs.get("column"), severity, ok, count, error,
                                                       None if ok else _sample(r.result)))
            if not ok and severity == "critical":
                outcome.critical_failed = True
        _store_escaped(ctx, run_id, validation)
    # the Data Docs are built from the stored results, escaped above: GX writes record values into
    # the HTML as they are, and the reports are served from Airflow's origin
    gx.checkpoint.UpdateDataDocsAction(name="docs", site_names=["local_site"]).run(result)
    for run_id in result.run_results:
        urls = ctx.get_docs_sites_urls(resource_identifier=run_id, site_name="local_site")
        if urls:
            outcome.report_path = urls[0]["site_url"].removeprefix("file://")
    outcome.success = not outcome.failed
    localize_site(Path(reports_dir))
    return outcome


def localize_site(site: Path) -> int:
    """Copy the vendored assets into the site and point every page at them; returns the pages changed.

    Re-running is harmless: a page with no CDN URL left is not rewritten."""
    urls = {u: a["file"] for u, a in json.loads((ASSETS / "assets.json").read_text())["urls"].items()}
    vendor = site / VENDOR
    shutil.copytree(ASSETS, vendor, dirs_exist_ok=True)
    changed = 0
    for page in site.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        local = localize(text, urls, Path(os.path.relpath(vendor, page.parent)).as_posix())
        if local != text:
            page.write_text(local, encoding="utf-8")
            changed += 1
    return changed


def escape_values(value: Any) -> Any:
    """`value` with every string in it HTML-escaped (dicts, lists and tuples walked; keys kept)."""
    if isinstance(value, str):
        return html.escape(value, quote=True)
    if isinstance(value, Mapping):
        return {k: escape_values(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [escape_values(v) for v in value]
    return value


def _store_escaped(ctx: Any, key: Any, validation: Any) -> None:
    """Replace the stored validation result with one whose record values (unexpected values, observed
    values, exception messages) are escaped text, so the report shows `<img ...>` as characters."""
    for r in validation.results:
        if r.result:
            r.result = escape_values(r.result)
        if r.exception_info:
            r.exception_info = escape_values(r.exception_info)
    ctx.validation_results_store.set(key, validation)


def _sample(result: Mapping[str, Any] | None, limit: int = 5) -> list[Any] | None:
    """A few unexpected values (or the observed value) as plain JSON values, for reports and the dashboard."""
    if not result:
        return None
    values = result.get("partial_unexpected_list")
    if values is None and "observed_value" in result:
        values = [result["observed_value"]]
    if not values:
        return None
    return [v if isinstance(v, str | int | float | bool) or v is None else str(v) for v in list(values)[:limit]]


def _exceptions(info: Any) -> list[dict[str, Any]]:
    if isinstance(info, dict) and "raised_exception" in info:
        return [info]
    if isinstance(info, dict):
        return [v for v in info.values() if isinstance(v, dict)]
    return []
