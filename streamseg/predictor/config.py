"""How a frame's query predictions become scored instances. Torch-free (read by the config loader)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from streamseg.config_checks import require


@dataclass
class PostprocessConfig:
    # argmax: each query's best class probability x mask quality (streamseg's own models).
    # mask2former: Mask2Former's instance post-processing (the default of imported models): the
    # top_k best (query, class) pairs of the softmax (no-object dropped), score = class
    # probability x mean foreground probability inside the binarised mask; a query then shows its
    # best selected pair (one object, one class: its other pairs would be the same mask again).
    mode: Literal["argmax", "mask2former"] = "argmax"
    top_k: int = 0  # mask2former: (query, class) pairs kept per frame; 0 = number of queries
    # Keep only the pieces (8-connected, at the network's mask resolution) of a published class mask
    # whose area is at least this x its largest piece's: 1.0 = the largest piece only, 0 = every
    # piece (Mask2Former). Stray specks far from the object otherwise stretch its box over the
    # frame and cost IoU. Prompted targets keep every piece.
    min_piece_ratio: float = 0.0
    # Temporal continuity of prompted targets: a target's mask keeps only its pieces that touch
    # its previous mask grown by this many cells (8-connected, at the mask resolution); when none
    # touches, the target shows nothing that frame (it left the view or is hidden) and is picked
    # up again where it was last seen. -1 = off (every piece, wherever it is).
    target_continuity: int = -1
    # A target whose own mask is empty shows, under its ID, the class track it was following (the
    # shown track its mask last coincided with, IoU >= 0.3), or when that one is gone the shown
    # class track overlapping its last mask most (predictor/target_fallback.py). Needs a vocabulary
    # holding the object's class; with an empty one it does nothing.
    target_fallback: bool = False
    # The same rule for class tracks: a track whose mask no longer touches its last shown mask
    # (grown by this many cells) shows nothing (its query jumped to an object some other track
    # usually holds) until it is back where it was last seen. -1 = off.
    track_continuity: int = -1
    # What ranks a class track (its published score, the running mean of class probability x
    # this): "mask" = the mean foreground probability inside its binarised mask (Mask2Former),
    # "head" = the IoU the model's quality head predicts (model.quality_head), "both" = their
    # product. Births and misses keep reading the "mask" score, the scale their thresholds have.
    quality: Literal["mask", "head", "both"] = "mask"

    def validate(self) -> None:
        require(self.top_k >= 0, "top_k must be >= 0 (0 = the number of queries)")
        require(0.0 <= self.min_piece_ratio <= 1.0, "min_piece_ratio must be in [0, 1]")
        require(self.target_continuity >= -1, "target_continuity must be >= 0 cells (or -1: off)")
        require(self.quality in ("mask", "head", "both"), "quality must be mask, head or both")
        require(self.track_continuity >= -1, "track_continuity must be >= 0 cells (or -1: off)")
