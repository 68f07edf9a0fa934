"""Training settings. Owned by the training package; extend here, torch-free."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from streamseg.config_checks import require


@dataclass
class TrainConfig:
    # Optimiser (AdamW) and schedule: linear warm-up, then cosine to 0 or steps down by a factor.
    lr: float = 1e-4
    weight_decay: float = 0.05
    backbone_lr_mult: float = 0.1  # the pretrained backbone moves slower (Mask2Former)
    steps: int = 1000
    warmup: int = 50
    lr_schedule: Literal["cosine", "step"] = "cosine"
    lr_milestones: list[int] = field(default_factory=list)  # "step" schedule: multiply by lr_gamma at each
    lr_gamma: float = 0.1
    grad_clip: float = 1.0  # max total gradient norm; 0 = off
    amp: bool = True  # mixed precision, CUDA only (CPU always runs fp32)
    # Data: videos per step per process, frames per clip decoded online.
    batch: int = 2
    clip_frames: int = 3
    datasets: list[str] = field(default_factory=list)  # dataset folders/JSONs (`--data` replaces them)
    ratios: list[float] = field(default_factory=list)  # per dataset; empty = equal (1:1:0.75 for three)
    alias_file: str | None = None  # YAML "canonical: [alias, ...]" merging synonyms across datasets
    max_stride: int = 3  # frames of a clip are 1..max_stride video frames apart (random per clip)
    # Augmentation, one draw per clip: resize the short side to short_side (0 = the model's
    # input_short_side) times a scale jitter, flip, then a random crop of crop = [h, w]
    # (empty = short_side x 1.5 short_side, rounded to 32) so the clips of a batch stack.
    short_side: int = 0
    scale_min: float = 0.8
    scale_max: float = 1.2
    flip_prob: float = 0.5
    crop: list[int] = field(default_factory=list)
    # Bookkeeping.
    checkpoint_every: int = 500
    keep_checkpoints: int = 3  # older periodic checkpoints are deleted (0 = keep all)
    log: str = "train_log.jsonl"  # JSON lines, relative to the output folder
    log_every: int = 10
    seed: int = 0
    # Loss weights (TMT-VIS eq. 8: lambda_cls = 2, lambda_taxo = 0.5; Mask2Former mask/dice 5/5).
    class_weight: float = 2.0
    mask_weight: float = 5.0
    dice_weight: float = 5.0
    taxo_weight: float = 0.5
    tcm_weight: float = 1.0  # BCE of TCM's score S against the classes present in the clip
    no_object_weight: float = 0.1
    quality_weight: float = 1.0  # BCE of model.quality_head's IoU logits (no head: no term)
    # Train only the parameters under these name prefixes (e.g. [quality_head]: a new head on
    # frozen weights, which then keep every other prediction bit for bit); empty = all.
    trainable: list[str] = field(default_factory=list)
    # Point-sampled mask losses (Mask2Former): points per mask, importance sampling.
    num_points: int = 12544
    oversample_ratio: float = 3.0
    importance_sample_ratio: float = 0.75
    # extra points per matched mask drawn on the frame's other objects (hard negatives for masks
    # that spill over touching or occluding neighbours); 0 = Mask2Former's sampling only
    neighbour_points: int = 0
    # Targets (TarViS multi-task): this fraction of steps are target clips: on a random frame of
    # each clip, up to max_train_targets objects are prompted from the ground truth (a kind drawn
    # from target_prompts: its mask, its box, or one point inside it) and tracked to the clip's end,
    # with BCE + dice mask losses (times target_weight) on each prompted object; the VIS losses
    # apply to every clip. 0 = VIS only (the target encoder is not trained).
    target_ratio: float = 0.0
    target_weight: float = 1.0
    max_train_targets: int = 3
    target_prompts: list[str] = field(default_factory=lambda: ["mask", "box", "point"])
    # this share of the target clips are prompted as eval-targets' hard cases: on a frame in the
    # clip's first half, the smallest visible objects (entering objects are slivers); 0 = off
    target_small_early: float = 0.0
    # Held-out AP while training (`train --eval-data`): every eval_every steps and at the end, the
    # model runs online over the first eval_videos videos of eval_data; logged as "eval" records
    # and drawn in ap.png. None = no evaluation.
    eval_data: str | None = None  # held-out dataset (folder or JSON) scored during training; None = off
    eval_every: int = 500  # steps between held-out evaluations (one more at the end)
    eval_videos: int = 8  # held-out videos per evaluation (its first N)

    def validate(self) -> None:
        require(self.lr > 0, "lr must be > 0")
        require(self.weight_decay >= 0, "weight_decay must be >= 0")
        require(self.backbone_lr_mult >= 0, "backbone_lr_mult must be >= 0")
        require(self.steps >= 1, "steps must be >= 1")
        require(self.warmup >= 0, "warmup must be >= 0")
        require(all(m >= 1 for m in self.lr_milestones), "lr_milestones must be >= 1")
        require(0 < self.lr_gamma <= 1, "lr_gamma must be in (0, 1]")
        require(self.grad_clip >= 0, "grad_clip must be >= 0")
        require(self.batch >= 1, "batch must be >= 1")
        require(self.clip_frames >= 1, "clip_frames must be >= 1")
        require(not self.ratios or all(r > 0 for r in self.ratios), "ratios must be > 0")
        require(not (self.ratios and self.datasets) or len(self.ratios) == len(self.datasets),
                "ratios must have one entry per dataset")
        require(self.max_stride >= 1, "max_stride must be >= 1")
        require(self.short_side >= 0, "short_side must be >= 0")
        require(0 < self.scale_min <= self.scale_max, "scale_min must be > 0 and <= scale_max")
        require(0 <= self.flip_prob <= 1, "flip_prob must be in [0, 1]")
        require(not self.crop or (len(self.crop) == 2 and min(self.crop) >= 32),
                "crop must be [height, width], each >= 32")
        require(self.checkpoint_every >= 1, "checkpoint_every must be >= 1")
        require(self.keep_checkpoints >= 0, "keep_checkpoints must be >= 0")
        require(self.log_every >= 1, "log_every must be >= 1")
        require(self.eval_every >= 1, "eval_every must be >= 1")
        require(self.eval_videos >= 1, "eval_videos must be >= 1")
        require(bool(self.log), "log must be a file name")
        for name in ("class_weight", "mask_weight", "dice_weight", "taxo_weight", "tcm_weight", "quality_weight"):
            require(getattr(self, name) >= 0, f"{name} must be >= 0")
        require(0 < self.no_object_weight <= 1, "no_object_weight must be in (0, 1]")
        require(self.num_points >= 16, "num_points must be >= 16")
        require(self.oversample_ratio >= 1, "oversample_ratio must be >= 1")
        require(0 <= self.importance_sample_ratio <= 1, "importance_sample_ratio must be in [0, 1]")
        require(self.neighbour_points >= 0, "neighbour_points must be >= 0")
        require(0 <= self.target_ratio <= 1, "target_ratio must be in [0, 1]")
        require(self.target_weight >= 0, "target_weight must be >= 0")
        require(self.max_train_targets >= 1, "max_train_targets must be >= 1")
        require(0 <= self.target_small_early <= 1, "target_small_early must be in [0, 1]")
        require(bool(self.target_prompts) and all(k in ("mask", "box", "point") for k in self.target_prompts),
                "target_prompts must be a non-empty list of mask, box, point")
