"""Offline STAC validation: core + every declared extension, schemas from tests/data/schemas.

jsonschema + referencing with a registry that only knows the copied official schemas; any
other URL raises, so a test never silently reaches the network. ``tests/data/schemas`` is a
subset of the team's shared schema folder (``../shared/schemas``): :func:`unshared_schemas`
names any declared schema the shared folder lacks, i.e. one no validator could fetch.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator, FormatChecker
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource

SCHEMAS = Path(__file__).parent / "data" / "schemas"
SHARED_SCHEMAS = Path(__file__).parents[1].parent / "shared" / "schemas"

_CORE = {
    "Feature": "item-spec/json-schema/item.json",
    "Collection": "collection-spec/json-schema/collection.json",
    "Catalog": "catalog-spec/json-schema/catalog.json",
}


@cache
def _index() -> dict[str, Path]:
    """Canonical URL -> local file."""
    index = json.loads((SCHEMAS / "index.json").read_text())
    return {url: SCHEMAS / rel for url, rel in index.items()}


def _retrieve(uri: str) -> Resource:
    """Registry hook: local files only."""
    path = _index().get(uri.rstrip("#"))
    if path is None:
        raise NoSuchResource(ref=uri)
    return Resource.from_contents(json.loads(path.read_text()))


@cache
def _registry() -> Registry:
    return Registry(retrieve=_retrieve)  # type: ignore[call-arg]


def schema_urls(obj: dict[str, Any]) -> list[str]:
    """Core schema of ``obj``'s type and version, then each declared extension."""
    core = f"https://schemas.stacspec.org/v{obj['stac_version']}/{_CORE[obj['type']]}"
    return [core, *(url.rstrip("#") for url in obj.get("stac_extensions", []))]


def unshared_schemas(obj: dict[str, Any]) -> list[str]:
    """Schemas ``obj`` declares that the shared official schema folder does not hold."""
    shared = json.loads((SHARED_SCHEMAS / "index.json").read_text())
    return [url for url in schema_urls(obj) if url not in shared]


def validation_errors(obj: dict[str, Any]) -> list[str]:
    """Every schema error of ``obj`` (empty when valid), naming the schema that failed."""
    errors = []
    for url in schema_urls(obj):
        if url not in _index():
            errors.append(f"no local copy of schema {url}")
            continue
        schema = json.loads(_index()[url].read_text())
        validator = Draft7Validator(schema, registry=_registry(), format_checker=FormatChecker())
        errors.extend(f"{url}: {_describe(e)}" for e in validator.iter_errors(obj))
    return errors


def _describe(error: ValidationError) -> str:
    """Path and message of the most relevant sub-error, kept short."""
    while error.context:  # oneOf/anyOf: the deepest sub-error is the informative one
        error = max(error.context, key=lambda e: len(e.absolute_path))
    return f"{'/'.join(map(str, error.absolute_path)) or '.'}: {error.message[:300]}"


def assert_valid(obj: dict[str, Any]) -> None:
    """Fail with every error if ``obj`` does not validate."""
    errors = validation_errors(obj)
    assert not errors, f"{obj.get('type')} {obj.get('id')} is invalid:\n" + "\n".join(errors)
