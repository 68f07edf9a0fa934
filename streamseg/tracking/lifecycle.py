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
from typing import Any

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

    def update(self, state: SlotTracks, scores: np.ndarray, masks: np.ndarray | None = None,
               rank_scores: np.ndarray | None = None) -> LifecycleResult:
        """Advance the lifecycle by one frame.

        scores (Q,): this frame's per-slot score (class prob x mask quality; 0 for an empty mask).
        masks (Q, h, w) bool, optional: the slots' masks at any common resolution, used to refuse
        a birth that duplicates a visible track. rank_scores (Q,), optional: what the tracks'
        published scores average instead of ``scores`` (births and misses still read ``scores``).
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

        flat = None if masks is None else np.asarray(masks, dtype=bool).reshape(state.num_slots, -1)
        merged = np.zeros_like(tracked)
        if flat is not None:
            merged = self._merge_live_duplicates(flat, visible, state.track_id)
            visible &= ~merged
            ended |= merged

        # Births: free slots reaching the birth threshold, best first. A candidate on the mask of
        # a visible track (or of an earlier birth this frame) is a duplicate and is refused; one on
        # the mask of a track that is alive but missed this frame takes that track over (same ID),
        # so one object never holds two IDs while its first slot fades.
        candidates = ~tracked & (scores > 0.0) & (scores >= cfg.birth_threshold)
        born = np.zeros_like(candidates)
        duplicate = np.zeros_like(candidates)
        taken_over = np.zeros_like(candidates)
        for slot in np.flatnonzero(candidates)[np.argsort(-scores[candidates], kind="stable")]:
            if flat is not None and _best_overlap(flat, slot, visible | born, cfg.duplicate_iou) is not None:
                duplicate[slot] = True
                continue
            faded = None if flat is None else _best_overlap(flat, slot, missed_now & ~ended, cfg.duplicate_iou)
            if faded is not None:
                self._move_track(state, faded, slot)
                missed_now[faded] = False
                taken_over[faded] = True
                visible[slot] = True
                continue
            born[slot] = True
            state.track_id[slot] = state.next_id
            state.next_id += 1
            state.score[slot] = 0.0
            state.visible_count[slot] = 0
            state.missed[slot] = 0
        visible |= born

        rank = scores if rank_scores is None else np.asarray(rank_scores, dtype=np.float64)
        observe(state, visible, rank[visible], cfg.score_window)
        track_id = state.track_id.copy()
        score = state.score * ramp(state.visible_count, cfg.score_ramp)
        clear(state, ended)
        return LifecycleResult(visible=visible, born=born, ended=ended,
                               reset=ended | duplicate | taken_over, track_id=track_id, score=score)

    def _merge_live_duplicates(self, flat: np.ndarray, visible: np.ndarray,
                               track_id: np.ndarray) -> np.ndarray:
        """Visible tracks whose masks overlap an older visible track's (IoU > duplicate_iou) are
        merged into it: the younger track ends now and its slot is reset. Returns those slots."""
        merged = np.zeros_like(visible)
        kept = np.zeros_like(visible)
        order = np.flatnonzero(visible)
        order = order[np.argsort(track_id[order], kind="stable")]  # oldest (lowest ID) first
        for slot in order:
            if _best_overlap(flat, int(slot), kept, self.cfg.duplicate_iou) is not None:
                merged[slot] = True
            else:
                kept[slot] = True
        return merged

    @staticmethod
    def _move_track(state: SlotTracks, src: int, dst: int) -> None:
        """Hand the track of slot ``src`` (and its running score) over to slot ``dst``."""
        state.track_id[dst] = state.track_id[src]
        state.score[dst] = state.score[src]
        state.visible_count[dst] = state.visible_count[src]
        state.missed[dst] = 0
        clear(state, np.array([src]))


def observe(state: Any, rows: np.ndarray, scores: np.ndarray, window: int) -> None:
    """Fold this frame's scores into the tracks of ``rows`` (index or bool mask): a running mean
    over the last ``window`` visible frames, an incremental mean that turns into an EMA."""
    n = np.minimum(state.visible_count[rows] + 1, window)
    state.visible_count[rows] = n
    state.score[rows] += (scores - state.score[rows]) / n


def ramp(visible_count: np.ndarray, frames: int) -> np.ndarray:
    """The factor on a track's published score: visible frames / ``frames``, up to 1 (0: always
    1). A track seen on a frame or two is less sure than one seen on many."""
    if frames <= 0:
        return np.ones(visible_count.shape)
    return np.minimum(visible_count / frames, 1.0)


def clear(state: Any, rows: np.ndarray) -> None:
    """Free ``rows``: no track, no score, no history (slot tracks and matched tracks alike)."""
    state.track_id[rows] = FREE
    state.score[rows] = 0.0
    state.visible_count[rows] = 0
    state.missed[rows] = 0


def _best_overlap(flat: np.ndarray, slot: int, others: np.ndarray, max_iou: float) -> int | None:
    """The slot among ``others`` whose mask overlaps slot's most, if that IoU exceeds max_iou."""
    idx = np.flatnonzero(others)
    mine = flat[slot]
    area = mine.sum()
    if idx.size == 0 or area == 0:
        return None
    inter = (flat[idx] & mine).sum(axis=1)
    union = flat[idx].sum(axis=1) + area - inter
    iou = inter / np.maximum(union, 1)
    best = int(np.argmax(iou))
    return int(idx[best]) if iou[best] > max_iou else None
