"""The taxonomy as data: load the YAML files in taxonomy/, validate them, and version them by content.

Analysts edit the files; the code never names a theme. Any edit changes `Taxonomy.version`, which is
recorded with every tag so re-tagging can find what an older taxonomy produced.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

from vkpp_learning import settings
from vkpp_learning.errors import ConfigurationError

SCHEMA_FILE = "schema.json"
FILE_PATTERNS = ("*.yaml", "*.yml")


@dataclass(frozen=True)
class Theme:
    """One theme of one facet: a perennial issue, a vulnerability or an agency."""

    id: str
    name: str
    definition: str
    facet: str
    parent: str | None = None
    phrases: tuple[str, ...] = ()
    weak_phrases: tuple[str, ...] = ()
    examples: tuple[str, ...] = ()
    review_types: tuple[str, ...] = ()


@dataclass(frozen=True)
class TaxonomyFile:
    path: Path
    facet: str
    version: str
    title: str
    description: str


@dataclass(frozen=True)
class Taxonomy:
    """Every theme of every facet, with the version that tags record."""

    version: str
    themes: tuple[Theme, ...]
    files: tuple[TaxonomyFile, ...]

    @cached_property
    def _by_facet(self) -> dict[str, list[Theme]]:
        by_facet: dict[str, list[Theme]] = {}
        for theme in self.themes:
            by_facet.setdefault(theme.facet, []).append(theme)
        return by_facet

    @property
    def facets(self) -> list[str]:
        return list(self._by_facet)

    def facet(self, name: str) -> list[Theme]:
        """The themes of one facet in file order; an unknown facet is an empty list."""
        return list(self._by_facet.get(name, []))

    def ids(self, facet: str) -> list[str]:
        return [theme.id for theme in self.facet(facet)]

    def theme(self, theme_id: str, facet: str | None = None) -> Theme:
        """The theme with this id; give `facet` when the id exists in more than one facet."""
        found = [t for t in self.themes if t.id == theme_id and (facet is None or t.facet == facet)]
        if not found:
            raise KeyError(f"no theme {theme_id!r}" + (f" in facet {facet!r}" if facet else ""))
        if len(found) > 1:
            facets = ", ".join(t.facet for t in found)
            raise KeyError(f"theme id {theme_id!r} is in several facets ({facets}); say which facet")
        return found[0]

    def ancestors(self, theme: Theme) -> list[Theme]:
        """The parent, grandparent, ... of a theme (validated on load to have no cycle)."""
        chain: list[Theme] = []
        while theme.parent:
            theme = self.theme(theme.parent, theme.facet)
            chain.append(theme)
        return chain


def default_directory() -> Path:
    """VKPP_TAXONOMY_DIR when set, else the taxonomy/ folder shipped beside the package."""
    configured = settings.get("VKPP_TAXONOMY_DIR").strip()
    return Path(configured).expanduser() if configured else settings.project_root() / "taxonomy"


def load_taxonomy(directory: str | Path | None = None) -> Taxonomy:
    """Read, validate and version every taxonomy YAML file in `directory`."""
    folder = Path(directory) if directory is not None else default_directory()
    paths = _taxonomy_paths(folder)
    schema = _load_schema(folder)
    documents = [(path, _read_yaml(path)) for path in paths]
    for path, data in documents:
        _validate_against_schema(path, data, schema)
    themes = [theme for path, data in documents for theme in _themes_from(data)]
    _check_ids_unique(themes, documents)
    _check_parents(themes)
    files = tuple(_file_record(path, data) for path, data in documents)
    return Taxonomy(version=_version(documents), themes=tuple(themes), files=files)


def _taxonomy_paths(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise ConfigurationError(
            f"taxonomy folder {folder} does not exist; set VKPP_TAXONOMY_DIR to a folder of taxonomy YAML files "
            "or leave it empty to use the shipped taxonomy/",
            code="taxonomy_missing",
        )
    paths = sorted({p for pattern in FILE_PATTERNS for p in folder.glob(pattern)})
    if not paths:
        raise ConfigurationError(f"taxonomy folder {folder} holds no .yaml files", code="taxonomy_missing")
    return paths


def _load_schema(folder: Path) -> dict[str, Any]:
    # The shipped schema is the code's contract, so it wins over a copy in an analyst's folder.
    for candidate in (settings.project_root() / "taxonomy" / SCHEMA_FILE, folder / SCHEMA_FILE):
        if candidate.is_file():
            return json.loads(candidate.read_text(encoding="utf-8"))
    raise ConfigurationError(f"taxonomy schema {SCHEMA_FILE} not found", code="taxonomy_missing")


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" line {where.line + 1}" if where is not None else ""
        raise ConfigurationError(f"{path.name}{line}: not valid YAML: {exc}", code="taxonomy_invalid") from None


def _validate_against_schema(path: Path, data: Any, schema: dict[str, Any]) -> None:
    import jsonschema  # type: ignore[import-untyped]  # only loading a taxonomy needs it

    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        error = errors[0]
        more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
        raise ConfigurationError(
            f"{path.name}: {_describe_location(data, list(error.absolute_path))}: {error.message}{more}",
            code="taxonomy_invalid",
        )


def _describe_location(data: Any, location: list[Any]) -> str:
    """'theme 3 (id risk_assessment), field phrases' for a jsonschema error path."""
    if len(location) >= 2 and location[0] == "themes" and isinstance(location[1], int):
        theme = data["themes"][location[1]]
        theme_id = theme.get("id") if isinstance(theme, dict) else None
        words = f"theme {location[1] + 1}" + (f" (id {theme_id})" if theme_id else "")
        if len(location) > 2:
            words += f", field {location[2]}" + "".join(f"[{p}]" for p in location[3:])
        return words
    if location:
        return f"field {location[0]}" + "".join(f"[{p}]" for p in location[1:])
    return "top level"


def _themes_from(data: dict[str, Any]) -> list[Theme]:
    return [
        Theme(
            id=item["id"],
            name=item["name"].strip(),
            definition=" ".join(item["definition"].split()),
            facet=data["facet"],
            parent=item.get("parent"),
            phrases=tuple(p.strip() for p in item["phrases"]),
            weak_phrases=tuple(p.strip() for p in item.get("weak_phrases") or ()),
            examples=tuple(e.strip() for e in item["examples"]),
            review_types=tuple(item.get("review_types") or ()),
        )
        for item in data["themes"]
    ]


def _check_ids_unique(themes: list[Theme], documents: list[tuple[Path, Any]]) -> None:
    seen: dict[tuple[str, str], str] = {}
    for path, data in documents:
        for item in data["themes"]:
            key = (data["facet"], item["id"])
            if key in seen:
                raise ConfigurationError(
                    f"{path.name}: theme id {item['id']} appears twice in facet {data['facet']} (also in {seen[key]})",
                    code="taxonomy_invalid",
                )
            seen[key] = path.name


def _check_parents(themes: list[Theme]) -> None:
    ids = {(t.facet, t.id) for t in themes}
    parents = {(t.facet, t.id): t.parent for t in themes}
    for theme in themes:
        if theme.parent and (theme.facet, theme.parent) not in ids:
            raise ConfigurationError(
                f"theme {theme.id} ({theme.facet}): parent {theme.parent} is not a theme of facet {theme.facet}",
                code="taxonomy_invalid",
            )
        _check_no_cycle(theme, parents)


def _check_no_cycle(theme: Theme, parents: dict[tuple[str, str], str | None]) -> None:
    path = [theme.id]
    current = theme.parent
    while current:
        if current in path:
            cycle = " -> ".join([*path, current])
            raise ConfigurationError(
                f"theme parents form a cycle in facet {theme.facet}: {cycle}", code="taxonomy_invalid"
            )
        path.append(current)
        current = parents.get((theme.facet, current))


def _file_record(path: Path, data: dict[str, Any]) -> TaxonomyFile:
    return TaxonomyFile(path, data["facet"], data["version"], data["title"], " ".join(data["description"].split()))


def _version(documents: list[tuple[Path, Any]]) -> str:
    """'<highest file version>+<8 hex of the content hash>': any edit to any file changes it."""
    highest = max((data["version"] for _, data in documents), key=lambda v: tuple(int(x) for x in v.split(".")))
    canonical = json.dumps([[path.name, data] for path, data in documents], sort_keys=True, ensure_ascii=False)
    return f"{highest}+{hashlib.sha256(canonical.encode('utf-8')).hexdigest()[:8]}"
