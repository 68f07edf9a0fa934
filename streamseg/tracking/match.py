"""Tracks for a per-frame model: each frame's queries matched to live tracks by embedding (MinVIS).

An image model (Mask2Former COCO, MinVIS) runs fresh queries every frame, so query slot i holds a
different object from frame to frame. Each frame's kept queries (score >= keep_threshold) are
assigned to live tracks by Hungarian matching on the cosine similarity of their decoder output
embeddings (``scipy.optimize.linear_sum_assignment``); a pair below ``match_threshold`` stays
unmatched. Then the lifecycle rules of ``TrackLifecycle``: an unmatched query reaching the birth
threshold starts a new track (IDs only increase) unless its mask duplicates a visible track's or
no track row is free (at most ``capacity`` tracks); a track with no query this frame is missed, and
after ``max_missed`` consecutive misses it ends.

State: fixed arrays of ``capacity`` rows, one embedding per track (an EMA of its matched
embeddings), so it does not grow with the stream.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from streamseg.tracking.config import TrackerConfig
from streamseg.tracking.lifecycle import FREE, _best_overlap, clear, observe, ramp


@dataclass
class MatchTracks:
    """Per-stream state: one row per possible track."""

    track_id: np.ndarray  # (T,) int64, FREE when the row holds no track
    embed: np.ndarray  # (T, C) float32 unit vectors (valid where track_id != FREE)
    score: np.ndarray  # (T,) float64 running-mean score
    visible_count: np.ndarray  # (T,) int64 visible frames (capped at score_window)
    missed: np.ndarray  # (T,) int64 consecutive missed frames
    next_id: int = 1  # the next track ID to hand out (prompted targets draw from it too)

    @classmethod
    def empty(cls, capacity: int, dim: int, next_id: int = 1) -> "MatchTracks":
        return cls(track_id=np.full(capacity, FREE, dtype=np.int64),
                   embed=np.zeros((capacity, dim), dtype=np.float32), score=np.zeros(capacity),
                   visible_count=np.zeros(capacity, dtype=np.int64),
                   missed=np.zeros(capacity, dtype=np.int64), next_id=next_id)

    @property
    def capacity(self) -> int:
        return int(self.track_id.shape[0])

    def nbytes(self) -> int:
        """Memory held by the state; constant for a given capacity and embedding size."""
        return int(self.track_id.nbytes + self.embed.nbytes + self.score.nbytes
                   + self.visible_count.nbytes + self.missed.nbytes)


@dataclass
class MatchResult:
    """What one frame decided, per query (arrays (N,)) and per track row."""

    track_id: np.ndarray  # (N,) int64: the track query n shows this frame, FREE if none
    score: np.ndarray  # (N,) float64: that track's running-mean score (0 where FREE)
    born: np.ndarray  # (N,) bool: query n started a new track this frame
    ended: list[int]  # IDs of tracks that ended this frame (max_missed reached)


class EmbeddingMatcher:
    def __init__(self, cfg: TrackerConfig) -> None:
        self.cfg = cfg

    def new_state(self, capacity: int, dim: int) -> MatchTracks:
        return MatchTracks.empty(capacity, dim)

    def update(self, state: MatchTracks, embeds: np.ndarray, scores: np.ndarray,
               masks: np.ndarray | None = None, rank_scores: np.ndarray | None = None) -> MatchResult:
        """Advance by one frame. embeds (N, C): the queries' embeddings (any scale: normalised
        here); scores (N,): their scores (0 for an empty mask); masks (N, h, w) bool, optional:
        used to refuse a birth that duplicates a visible track; rank_scores (N,), optional: what
        the tracks' published scores average instead of ``scores``."""
        cfg = self.cfg
        scores = np.asarray(scores, dtype=np.float64)
        n = scores.shape[0]
        emb = np.asarray(embeds, dtype=np.float32)
        if emb.shape != (n, state.embed.shape[1]):
            raise ValueError(f"embeds must have shape ({n}, {state.embed.shape[1]}), got {emb.shape}")
        emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        present = np.flatnonzero((scores > 0.0) & (scores >= cfg.keep_threshold))
        rows = np.flatnonzero(state.track_id != FREE)

        query_row = np.full(n, -1, dtype=np.int64)  # the track row query n joins this frame
        if rows.size and present.size:
            # einsum, not BLAS: for this small product OpenBLAS threads cost ~30 ms on a busy CPU
            sim = np.einsum("ic,jc->ij", state.embed[rows], emb[present])  # (live, kept)
            r, c = linear_sum_assignment(-sim)
            ok = sim[r, c] >= cfg.match_threshold
            query_row[present[c[ok]]] = rows[r[ok]]
        flat = None if masks is None else np.asarray(masks, dtype=bool).reshape(n, -1)
        if cfg.best_duplicate and flat is not None:
            self._show_best_duplicates(flat, scores, present, query_row)
        matched_q = np.flatnonzero(query_row >= 0)
        matched_rows = query_row[matched_q]  # distinct rows: the assignment is one-to-one
        m = cfg.embed_momentum
        mixed = m * state.embed[matched_rows] + (1.0 - m) * emb[matched_q]
        state.embed[matched_rows] = mixed / np.maximum(np.linalg.norm(mixed, axis=1, keepdims=True), 1e-12)
        state.missed[matched_rows] = 0
        unmatched = np.setdiff1d(rows, matched_rows)
        state.missed[unmatched] += 1
        ended_rows = unmatched[state.missed[unmatched] >= cfg.max_missed]

        # Births, best first: not on the mask of a matched query or an earlier birth, and only
        # while a row is free (rows of tracks ending this frame are free again next frame).
        shown = query_row >= 0
        born = np.zeros(n, dtype=bool)
        free = list(np.flatnonzero(state.track_id == FREE))
        candidates = present[(query_row[present] < 0) & (scores[present] >= cfg.birth_threshold)]
        for q in candidates[np.argsort(-scores[candidates], kind="stable")]:
            if not free:
                break
            if flat is not None and _best_overlap(flat, int(q), shown, cfg.duplicate_iou) is not None:
                continue
            row = free.pop(0)
            state.track_id[row] = state.next_id
            state.next_id += 1
            state.embed[row] = emb[q]
            state.score[row] = 0.0
            state.visible_count[row] = 0
            state.missed[row] = 0
            query_row[q] = row
            shown[q] = True
            born[q] = True

        qs = np.flatnonzero(shown)
        vis = query_row[qs]
        rank = scores if rank_scores is None else np.asarray(rank_scores, dtype=np.float64)
        observe(state, vis, rank[qs], cfg.score_window)  # the running mean TrackLifecycle keeps

        track_id = np.full(n, FREE, dtype=np.int64)
        score = np.zeros(n)
        track_id[qs] = state.track_id[vis]
        score[qs] = state.score[vis] * ramp(state.visible_count[vis], cfg.score_ramp)
        ended = [int(t) for t in state.track_id[ended_rows]]
        clear(state, ended_rows)
        return MatchResult(track_id=track_id, score=score, born=born, ended=ended)

    def _show_best_duplicates(self, flat: np.ndarray, scores: np.ndarray, present: np.ndarray,
                              query_row: np.ndarray) -> None:
        """A track whose matched query is duplicated (mask IoU > duplicate_iou) by an unmatched
        kept query that scores higher shows that query instead, best first (in place on
        ``query_row``). Two queries on one object may name it differently (a ring cut by the
        frame's border is also a plausible disk): whichever was born first would otherwise name
        it for good, since the other's birth is refused as a duplicate."""
        free = present[query_row[present] < 0]
        for q in free[np.argsort(-scores[free], kind="stable")]:
            shown = query_row >= 0
            s = _best_overlap(flat, int(q), shown, self.cfg.duplicate_iou)
            if s is not None and scores[q] > scores[s]:
                query_row[q], query_row[s] = query_row[s], -1
