"""A synthetic benchmark in the YouTube-VIS format, rendered from the synthetic scene.

No annotated video dataset is available offline, so the pipeline is shown to learn (and scored)
on this one: exact masks, moving and occluding shapes that enter and leave, a different textured
background and noise per video. ``split`` > 1 writes several training datasets whose taxonomies
differ but overlap; shapes outside a dataset's taxonomy stay in the pixels but are not annotated,
exactly the situation of joint training on YouTube-VIS + OVIS + UVO.

Layout (the YouTube-VIS one, every JSON sharing one image folder)::

    DIR/JPEGImages/<video>/00000.jpg ...
    DIR/train.json                       split == 1 (all classes)
    DIR/train_1.json ... train_K.json    split == K > 1 (one taxonomy each)
    DIR/valid.json                       held-out videos, all classes of the union
    DIR/synth_info.json                  the parameters that produced it, each video's scene seed
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from streamseg.data.frames import write_jpeg
from streamseg.data.synthetic_scene import SYNTHETIC_CLASSES, SceneConfig, SyntheticScene
from streamseg.data.ytvis import Annotation, Category, Rle, Video, YtvisDataset, encode_mask, write_ytvis
from streamseg.errors import ConfigError

# Different but overlapping taxonomies (each shape is in at least one training dataset).
SPLIT_TAXONOMIES: dict[int, list[tuple[str, ...]]] = {
    1: [SYNTHETIC_CLASSES],
    2: [("disk", "square", "triangle"), ("triangle", "ring", "cross")],
    3: [("disk", "square", "triangle"), ("square", "triangle", "ring"), ("ring", "cross", "disk")],
}


@dataclass
class SynthSpec:
    out: str
    videos: int = 40  # training videos per training dataset
    seed: int = 0
    frames: int = 24
    width: int = 320
    height: int = 192
    split: int = 1
    val_videos: int = 8
    instances: int = 5  # objects in view at once (scene lanes)
    frame_step: int = 3  # scene frames per video frame: objects visibly move within a clip
    quality: int = 90  # JPEG quality

    def validate(self) -> None:
        if self.split not in SPLIT_TAXONOMIES:
            raise ConfigError(f"--split must be one of {sorted(SPLIT_TAXONOMIES)}")
        for name in ("videos", "frames", "frame_step", "instances"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 1")
        if self.val_videos < 0:
            raise ConfigError("--val-videos must be >= 0")
        if self.width < 16 or self.height < 16:
            raise ConfigError("--width and --height must be >= 16")


def video_rng(seed: int, part: int, index: int) -> np.random.Generator:
    """The generator of video ``index`` of dataset ``part`` (0 = valid.json, k = train_k / train)."""
    return np.random.default_rng([seed, part, index])


def video_scene(spec: SynthSpec, rng: np.random.Generator) -> tuple[SyntheticScene, int, int]:
    """One video's scene, its seed and its first scene frame, drawn from the video's generator."""
    scene_seed = int(rng.integers(0, 2**31 - 1))
    start = int(rng.integers(0, 2000))
    scene = SyntheticScene(SceneConfig(seed=scene_seed, width=spec.width, height=spec.height, instances=spec.instances))
    return scene, scene_seed, start


def _render_video(
    spec: SynthSpec, name: str, rng: np.random.Generator, video_id: int, root: Path, log: dict
) -> tuple[Video, dict[int, tuple[str, list[Rle | None]]]]:
    """Render one video's frames to JPEGs; return it and its instance tubes (all classes)."""
    scene, scene_seed, start = video_scene(spec, rng)
    log[name] = {"scene_seed": scene_seed, "first_scene_frame": start}
    tubes: dict[int, tuple[str, list[Rle | None]]] = {}
    files = []
    for t in range(spec.frames):
        image, truth = scene.render(start + t * spec.frame_step)
        rel = f"{name}/{t:05d}.jpg"
        write_jpeg(root / "JPEGImages" / rel, image, spec.quality)
        files.append(rel)
        for inst in truth:
            if not inst.mask.any():
                continue
            tubes.setdefault(inst.instance_id, (inst.label, [None] * spec.frames))[1][t] = encode_mask(inst.mask)
    return Video(video_id, spec.width, spec.height, files), tubes


def _write_part(
    spec: SynthSpec, root: Path, part: int, prefix: str, count: int, taxonomy: tuple[str, ...], log: dict
) -> YtvisDataset:
    cat_ids = {name: i + 1 for i, name in enumerate(taxonomy)}
    videos: list[Video] = []
    anns: list[Annotation] = []
    for i in range(count):
        rng = video_rng(spec.seed, part, i)
        video, tubes = _render_video(spec, f"{prefix}_{i:04d}", rng, i + 1, root, log)
        videos.append(video)
        for _, (label, segs) in sorted(tubes.items()):
            if label in cat_ids:  # other shapes stay unannotated, like a real dataset's
                anns.append(Annotation(len(anns) + 1, video.id, cat_ids[label], segs))
    return YtvisDataset(videos, [Category(i, n) for n, i in cat_ids.items()], anns)


def write_synthetic(spec: SynthSpec, progress=None) -> list[Path]:
    """Write the benchmark; returns the JSON files written."""
    spec.validate()
    root = Path(spec.out)
    root.mkdir(parents=True, exist_ok=True)
    taxonomies = SPLIT_TAXONOMIES[spec.split]
    written = []
    log: dict[str, dict[str, int]] = {}  # video -> its scene (seed, first frame): enough to re-render it
    for k, taxonomy in enumerate(taxonomies, start=1):
        name = "train" if spec.split == 1 else f"train_{k}"
        ds = _write_part(spec, root, k, name.replace("_", ""), spec.videos, taxonomy, log)
        write_ytvis(root / f"{name}.json", ds)
        written.append(root / f"{name}.json")
        if progress:
            progress(f"{name}.json: {len(ds.videos)} videos, {len(ds.annotations)} tubes, classes {', '.join(taxonomy)}")
    if spec.val_videos:
        union = tuple(c for c in SYNTHETIC_CLASSES if any(c in t for t in taxonomies))
        ds = _write_part(spec, root, 0, "valid", spec.val_videos, union, log)
        write_ytvis(root / "valid.json", ds)
        written.append(root / "valid.json")
        if progress:
            progress(f"valid.json: {len(ds.videos)} held-out videos, {len(ds.annotations)} tubes")
    info = {**asdict(spec), "taxonomies": {p.name: list(t) for p, t in zip(written, taxonomies)}, "videos": log}
    (root / "synth_info.json").write_text(json.dumps(info, indent=1))
    return written
