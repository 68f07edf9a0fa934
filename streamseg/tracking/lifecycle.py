"""Track lifecycle over the model's query slots: birth, keep, miss, end.

The network keeps slot i on the same object by propagating its query (GenVIS online mode); this
module decides which slots are *tracks*. A free slot whose score reaches the birth threshold gets a
new track ID (IDs only increase, never reused). A track scoring below the keep threshold is missed
for that frame (not published); after ``max_missed`` consecutive misses it ends and its slot must be
reset to the learnable query (the caller does that through ``OnlineVIS.reset_slots``). Decisions
use only the current and past frames, so each frame's output is final when published.

All state is a fixed set of per-slot arrays: its size does not depend on the stream's length.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from streamseg.tracking.config import TrackerConfig

FREE = -1  # track_id of a slot that holds no track


@dataclass
class SlotTracks:
    """Per-stream lifecycle state: one entry per query slot."""

    track_id: np.ndarray  # (Q,) int64, FREE when the slot holds no track
    score: np.ndarray  # (Q,) float64 running-mean score of the slot's track
    visible_count: np.ndarray  # (Q,) int64 visible frames of the track (capped at score_window)
    missed: np.ndarray  # (Q,) int64 consecutive missed frames
    next_id: int = 1  # the next track ID to hand out

    @classmethod
    def empty(cls, num_slots: int, next_id: int = 1) -> "SlotTracks":
        return cls(track_id=np.full(num_slots, FREE, dtype=np.int64), score=np.zeros(num_slots),
                   visible_count=np.zeros(num_slots, dtype=np.int64),
                   missed=np.zeros(num_slots, dtype=np.int64), next_id=next_id)

    @property
    def num_slots(self) -> int:
        return int(self.track_id.shape[0])

    def nbytes(self) -> int:
        """Memory held by the state (arrays); constant for a given slot count."""
        return int(self.track_id.nbytes + self.score.nbytes + self.visible_count.nbytes + self.missed.nbytes)


@dataclass
class LifecycleResult:
    """What one frame's update decided (all arrays (Q,))."""

    visible: np.ndarray  # bool: slot's track is published this frame
    born: np.ndarray  # bool: a track started in this slot this frame (also visible)
    ended: np.ndarray  # bool: the slot's track ended this frame -> reset the slot
    reset: np.ndarray  # bool: slots to reset to the learnable query (ended tracks + duplicates)
    track_id: np.ndarray  # int64 track ID per slot this frame (an ended track's ID on its last frame)
    score: np.ndarray  # float64 running-mean score per slot this frame


class TrackLifecycle:
    def __init__(self, cfg: TrackerConfig) -> None:
        self.cfg = cfg

    def new_state(self, num_slots: int) -> SlotTracks:
        return SlotTracks.empty(num_slots)

    def update(self, state: SlotTracks, scores: np.ndarray, masks: np.ndarray | None = None) -> LifecycleResult:
        """Advance the lifecycle by one frame.

        scores (Q,): this frame's per-slot score (class prob x mask quality; 0 for an empty mask).
        masks (Q, h, w) bool, optional: the slots' masks at any common resolution, used to refuse
        a birth that duplicates a visible track.
        """
        cfg = self.cfg
        scores = np.asarray(scores, dtype=np.float64)
        if scores.shape != (state.num_slots,):
            raise ValueError(f"scores must have shape ({state.num_slots},), got {scores.shape}")
        tracked = state.track_id != FREE
        present = (scores > 0.0) & (scores >= cfg.keep_threshold)

        # Existing tracks: seen this frame -> visible, else one more miss; too many -> ended.
        visible = tracked & present
        missed_now = tracked & ~present
        state.missed[visible] = 0
        state.missed[missed_now] += 1
        ended = missed_now & (state.missed >= cfg.max_missed)

        # Births: free slots reaching the birth threshold, best first, unless they duplicate a
        # visible track (or an earlier birth this frame).
        candidates = ~tracked & (scores > 0.0) & (scores >= cfg.birth_threshold)
        born = np.zeros_like(candidates)
        duplicate = np.zeros_like(candidates)
        flat = None if masks is None else np.asarray(masks, dtype=bool).reshape(state.num_slots, -1)
        for slot in np.flatnonzero(candidates)[np.argsort(-scores[candidates], kind="stable")]:
            if flat is not None and _overlaps(flat, slot, visible | born, cfg.duplicate_iou):
                duplicate[slot] = True
                continue
            born[slot] = True
            state.track_id[slot] = state.next_id
            state.next_id += 1
            state.score[slot] = 0.0
            state.visible_count[slot] = 0
            state.missed[slot] = 0
        visible |= born

        # Running mean over the last score_window visible frames.
        n = np.minimum(state.visible_count[visible] + 1, cfg.score_window)
        state.visible_count[visible] = n
        state.score[visible] += (scores[visible] - state.score[visible]) / n

        track_id = state.track_id.copy()
        score = state.score.copy()
        state.track_id[ended] = FREE
        state.score[ended] = 0.0
        state.visible_count[ended] = 0
        state.missed[ended] = 0
        return LifecycleResult(visible=visible, born=born, ended=ended, reset=ended | duplicate,
                               track_id=track_id, score=score)


def _overlaps(flat: np.ndarray, slot: int, others: np.ndarray, max_iou: float) -> bool:
    """True when slot's mask overlaps any mask of ``others`` by IoU > max_iou."""
    idx = np.flatnonzero(others)
    if idx.size == 0:
        return False
    mine = flat[slot]
    area = mine.sum()
    if area == 0:
        return False
    inter = (flat[idx] & mine).sum(axis=1)
    union = flat[idx].sum(axis=1) + area - inter
    return bool((inter / np.maximum(union, 1) > max_iou).any())
