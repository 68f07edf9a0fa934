"""Online tracker settings. Owned by the tracking package; extend here, torch-free."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from streamseg.config_checks import require


@dataclass
class TrackerConfig:
    # propagate: the network carries each query slot to the next frame (GenVIS online mode), a
    # slot is a track. match: an image model (imported Mask2Former, MinVIS) gets fresh queries
    # every frame and each frame's kept queries are matched to tracks by the cosine similarity
    # of their embeddings (MinVIS), Hungarian assignment. propagate_match: queries are carried
    # as in propagate, IDs are assigned as in match, so an object that moves to another slot (or
    # whose slot fades while another picks it up) keeps its ID.
    mode: Literal["propagate", "match", "propagate_match"] = "propagate"
    birth_threshold: float = 0.5  # a free slot whose score reaches this becomes a new track
    keep_threshold: float = 0.3  # a track scoring below this (or with an empty mask) is missed this frame
    max_missed: int = 20  # D: consecutive missed frames after which a track ends and its slot is reset
    # A track's published score is the running mean of its per-frame scores over the last
    # `score_window` visible frames (an incremental mean that turns into an EMA, so it stays bounded).
    score_window: int = 30
    # While a track has been visible on fewer than `score_ramp` frames, its published score is
    # scaled by visible frames / score_ramp (0: off): a track seen on a frame or two is less sure
    # than one seen on many, and its score says so from the first frame (decided online).
    score_ramp: int = 0
    # A would-be new track whose (low-res) mask overlaps a visible track's mask by more than this IoU
    # is a duplicate of it: it is not born and its slot is reset.
    duplicate_iou: float = 0.7
    # match / propagate_match: a track whose query is duplicated (mask IoU > duplicate_iou) by an
    # unmatched query that scores higher shows that query this frame (its mask and class; the
    # track's embedding then moves towards it), so the better of two queries on one object names it.
    # propagate ignores it: there a slot is its track, and a duplicate slot is reset at birth.
    best_duplicate: bool = False
    mask_threshold: float = 0.5  # sigmoid of a mask logit at/above which a pixel belongs to the mask
    # match mode: a query joins a track only if their embeddings' cosine similarity reaches this
    match_threshold: float = 0.5
    # match mode: a track's embedding is this x its old one + (1 - this) x the matched query's,
    # renormalised (0 = the last matched embedding); one vector per track, whatever the length
    embed_momentum: float = 0.5

    def validate(self) -> None:
        require(0.0 <= self.keep_threshold <= self.birth_threshold <= 1.0,
                "thresholds must satisfy 0 <= keep_threshold <= birth_threshold <= 1")
        require(self.max_missed >= 1, "max_missed must be >= 1")
        require(self.score_window >= 1, "score_window must be >= 1")
        require(0 <= self.score_ramp <= self.score_window, "score_ramp must be in [0, score_window]")
        require(0.0 < self.duplicate_iou <= 1.0, "duplicate_iou must be in (0, 1]")
        require(0.0 < self.mask_threshold < 1.0, "mask_threshold must be in (0, 1)")
        require(-1.0 <= self.match_threshold <= 1.0, "match_threshold must be in [-1, 1]")
        require(0.0 <= self.embed_momentum < 1.0, "embed_momentum must be in [0, 1)")
