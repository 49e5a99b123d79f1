"""Versioned YAML configuration files (the rules file, the notification routes): one parser.

The version a file gets is `<its version label>+<sha256[:10] of its text>`, so two different texts
never share a version even when someone forgets to change the label. Errors name the position or
the field and never echo the file's text (task logs are widely read, and routes name secrets' homes).
"""

from __future__ import annotations

import hashlib
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from txnmon.errors import InvalidInputFile

Model = TypeVar("Model", bound=BaseModel)


def describe(exc: ValidationError) -> str:
    """Pydantic's errors, one per line, each with its dotted path."""
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown setting (typo?)"
        lines.append(f"{where}: {msg}" if where else msg)
    return "\n  ".join(lines)


def parse_versioned(text: str, source: str, model: type[Model], error: type[InvalidInputFile], what: str) -> Model:
    """Validate YAML `text` as `model`, its `version` made `<label>+<digest>`; `error` names what is wrong."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise error(f"{source}: not valid YAML{where}: {getattr(exc, 'problem', None) or 'parse error'}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise error(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:10]
    label = str(data.get("version", "")).strip()
    data["version"] = f"{label}+{digest}" if label else digest
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise error(f"{source}: invalid {what}:\n  {describe(exc)}") from None
