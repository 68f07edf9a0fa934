"""The unified taxonomy of jointly trained datasets: the union of their class names.

Names are matched by normalised text ("Sedan_Car", "sedan car" and "sedan-car" are one class), so
no hand-made id tables are needed; an optional alias file merges true synonyms ("motorbike" ->
"motorcycle"). Each dataset keeps its own category ids; the taxonomy maps them to unified ids.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import yaml

from streamseg.data.ytvis import YtvisDataset
from streamseg.errors import ConfigError


def normalise_name(name: str) -> str:
    """Lower case, ``_``/``-``/``/`` as spaces, single spaces, stripped."""
    return re.sub(r"\s+", " ", re.sub(r"[_\-/]+", " ", name.lower())).strip()


def load_aliases(path: str | Path) -> dict[str, str]:
    """An alias file is YAML: ``canonical name: [alias, alias, ...]``. Returns normalised alias -> canonical."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"alias file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError:
        raise ConfigError(f"alias file {p} is not valid YAML") from None
    if not isinstance(data, dict):
        raise ConfigError(f"alias file {p} must map a canonical name to a list of aliases")
    out: dict[str, str] = {}
    for canonical, aliases in data.items():
        if isinstance(aliases, str):
            aliases = [aliases]
        if not isinstance(canonical, str) or not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
            raise ConfigError(f"alias file {p}: '{canonical}' must map to a list of names")
        for alias in aliases:
            key = normalise_name(alias)
            if key in out and out[key] != canonical:
                raise ConfigError(f"alias file {p}: '{alias}' is an alias of both '{out[key]}' and '{canonical}'")
            out[key] = canonical
    return out


@dataclass
class UnifiedTaxonomy:
    names: list[str]  # unified class names (display form: the first spelling met, or the alias canonical)
    maps: dict[str, dict[int, int]] = field(default_factory=dict)  # dataset -> its category id -> unified id

    def unified_id(self, dataset: str, category_id: int) -> int:
        return self.maps[dataset][category_id]

    def dataset_names(self, dataset: str) -> list[str]:
        return [self.names[u] for u in self.maps[dataset].values()]


def build_taxonomy(
    datasets: Mapping[str, Sequence[tuple[int, str]]], aliases: Mapping[str, str] | None = None
) -> UnifiedTaxonomy:
    """``datasets``: name -> its (category id, category name) pairs, in the order to number them."""
    aliases = aliases or {}
    names: list[str] = []
    index: dict[str, int] = {}
    maps: dict[str, dict[int, int]] = {}
    for dataset, categories in datasets.items():
        m: dict[int, int] = {}
        for cat_id, name in categories:
            canonical = aliases.get(normalise_name(name), name)
            key = normalise_name(canonical)
            if key not in index:
                index[key] = len(names)
                names.append(canonical)
            if cat_id in m:
                raise ConfigError(f"dataset {dataset} lists category id {cat_id} twice")
            m[cat_id] = index[key]
        maps[dataset] = m
    return UnifiedTaxonomy(names, maps)


def taxonomy_of(datasets: Mapping[str, YtvisDataset], alias_file: str | Path | None = None) -> UnifiedTaxonomy:
    """The unified taxonomy of named YouTube-VIS datasets (categories in each file's order)."""
    aliases = load_aliases(alias_file) if alias_file else None
    return build_taxonomy({n: [(c.id, c.name) for c in ds.categories] for n, ds in datasets.items()}, aliases)
