"""Model names -> where their weights come from and how they are imported.

Built-in entries: the shipped CPU model (no download), the transformers Mask2Former COCO
instance checkpoints on the model hub, the original detectron2 Mask2Former R50 COCO release, and
MinVIS R50 (YouTube-VIS 2019/2021, OVIS) from its authors' hub mirror. ``$STREAMSEG_MODELS`` may
name a YAML file of more entries (a local mirror, plain-HTTP sources), same fields as
``ModelEntry``; they override built-in names.
"""
from __future__ import annotations

import dataclasses
import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from streamseg.errors import ConfigError


@dataclass(frozen=True)
class ModelFile:
    """One file of a model folder. ``names``: accepted names, first found wins (hub repos carry
    model.safetensors or only the older pytorch_model.bin)."""

    names: tuple[str, ...]
    url: str | None = None  # plain HTTP source (kind "url"); None: from the hub repo
    sha256: str | None = None  # published hash; hub LFS files are also checked against their ETag


@dataclass(frozen=True)
class ModelEntry:
    name: str
    description: str
    kind: Literal["shipped", "hub", "url"]
    config: str | None = None  # shipped: the shipped config that carries the checkpoint
    repo_id: str | None = None  # hub
    revision: str = "main"  # hub
    files: tuple[ModelFile, ...] = ()
    short_side: int = 480  # import setting: model.input_short_side
    format: Literal["transformers", "detectron2"] = "transformers"  # what the fetched files are
    classes: str | None = None  # detectron2: the class names' dataset (coco, ytvis19, ytvis21, ovis)
    # what `weights import` makes of it: tracker.mode match, postprocess mask2former, the
    # checkpoint's own class names (see streamseg.weights_import.convert.imported_config)


def _hub(name: str, size: str, what: str) -> ModelEntry:
    return ModelEntry(
        name=name, kind="hub", repo_id=f"facebook/mask2former-swin-{size}-coco-instance",
        description=f"Mask2Former Swin-{what} COCO instance (80 classes), transformers hub checkpoint",
        files=(ModelFile(("config.json",)), ModelFile(("model.safetensors", "pytorch_model.bin"))))


def _minvis(dataset: str, what: str) -> ModelEntry:
    """MinVIS R50 (NVlabs/MinVIS's model zoo, mirrored by its author on the hub): a detectron2
    .pth of the per-frame video Mask2Former; tracked online by embedding matching."""
    return ModelEntry(
        name=f"minvis-r50-{dataset}", kind="hub", repo_id="deahuang/MinVIS-Model-Zoo",
        format="detectron2", classes=dataset, short_side=360,  # the zoo's test size (360)
        description=f"MinVIS R50 {what}, the authors' detectron2 release on the model hub",
        files=(ModelFile((f"minvis_{dataset}_R50.pth",)),))


BUILTIN: tuple[ModelEntry, ...] = (
    ModelEntry(name="cpu-mobilenet-synth", kind="shipped", config="cpu-mobilenet",
               description="the shipped CPU model (MobileNetV2, TMT-VIS), trained on the synthetic "
               "benchmark's 5 shapes; no download"),
    _hub("mask2former-swin-t-coco", "tiny", "T"),
    _hub("mask2former-swin-s-coco", "small", "S"),
    _hub("mask2former-swin-b-coco", "base", "B"),
    _hub("mask2former-swin-l-coco", "large", "L"),
    ModelEntry(name="mask2former-r50-coco", kind="url", format="detectron2", classes="coco",
               description="Mask2Former R50 COCO instance (80 classes), the original detectron2 release",
               files=(ModelFile(("model_final_3c8ec9.pkl",),
                                url="https://dl.fbaipublicfiles.com/maskformer/mask2former/coco/instance/"
                                    "maskformer2_R50_bs16_50ep/model_final_3c8ec9.pkl"),)),
    _minvis("ytvis19", "YouTube-VIS 2019 (40 classes)"),
    _minvis("ytvis21", "YouTube-VIS 2021 (40 classes)"),
    _minvis("ovis", "OVIS (25 classes)"),
)


def _entry(raw: Any, where: str) -> ModelEntry:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise ConfigError(f"{where}: each model needs a mapping with a 'name'")
    known = {f.name for f in dataclasses.fields(ModelEntry)}
    extra = set(raw) - known
    if extra:
        raise ConfigError(f"{where}: model {raw['name']}: unknown keys {sorted(extra)}")
    files = []
    for f in raw.get("files") or []:
        if not isinstance(f, dict) or not f.get("names"):
            raise ConfigError(f"{where}: model {raw['name']}: each file needs 'names'")
        names = f["names"] if isinstance(f["names"], list) else [f["names"]]
        files.append(ModelFile(tuple(str(n) for n in names), f.get("url"), f.get("sha256")))
    entry = ModelEntry(**{**raw, "files": tuple(files), "description": str(raw.get("description", ""))})
    if entry.format not in ("transformers", "detectron2"):
        raise ConfigError(f"{where}: model {entry.name}: format must be transformers or detectron2")
    if entry.kind not in ("shipped", "hub", "url"):
        raise ConfigError(f"{where}: model {entry.name}: kind must be shipped, hub or url")
    if entry.kind == "hub" and not entry.repo_id:
        raise ConfigError(f"{where}: model {entry.name}: a hub model needs repo_id")
    if entry.kind == "url" and not all(f.url for f in entry.files):
        raise ConfigError(f"{where}: model {entry.name}: every file of a url model needs a url")
    return entry


@dataclass
class Registry:
    entries: dict[str, ModelEntry] = field(default_factory=dict)

    @classmethod
    def default(cls) -> "Registry":
        """Built-in entries plus those of the YAML file named by $STREAMSEG_MODELS."""
        entries = {e.name: e for e in BUILTIN}
        extra = os.environ.get("STREAMSEG_MODELS")
        if extra:
            import yaml

            path = Path(extra)
            try:
                data = yaml.safe_load(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
                raise ConfigError(f"STREAMSEG_MODELS={extra}: cannot read it ({type(exc).__name__})") from None
            models = data.get("models") if isinstance(data, dict) else None
            if not isinstance(models, list):
                raise ConfigError(f"STREAMSEG_MODELS={extra}: expected a mapping with a 'models' list")
            entries.update({e.name: e for e in (_entry(m, f"STREAMSEG_MODELS={extra}") for m in models)})
        return cls(entries)

    def get(self, name: str) -> ModelEntry:
        if name not in self.entries:
            close = difflib.get_close_matches(name, list(self.entries), n=3)
            hint = f"closest: {', '.join(close)}" if close else f"known: {', '.join(self.entries)}"
            raise ConfigError(f"unknown model '{name}' ({hint}; `streamseg models` lists them)")
        return self.entries[name]
