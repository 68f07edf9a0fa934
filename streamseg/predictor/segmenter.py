"""The predictor: OnlineVIS + track lifecycle + postprocess, behind the engine's Segmenter protocol.

Three ways to keep IDs (``tracker.mode``): ``propagate`` carries each query slot to the next frame
(a slot is a track, TrackLifecycle); ``match`` runs an image model with fresh queries every frame
and matches each frame's queries to tracks by embedding similarity (EmbeddingMatcher, MinVIS);
``propagate_match`` carries the queries and matches them to tracks by embedding (an object that
changes slot keeps its ID).

In the spirit of SAM2's video predictor: ``build_segmenter(config, checkpoint)`` once, then per
stream ``init_state(vocabulary)`` and ``step(state, frame) -> Tracks`` (or ``propagate(frames)``).
One model serves any number of streams; everything a stream needs lives in its state object.
"""
from __future__ import annotations

import dataclasses
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from streamseg.config import Config
from streamseg.errors import ConfigError
from streamseg.interface import Frame, Instance, Tracks, Vocabulary
from streamseg.masks import box_xyxy
from streamseg.model.online import OnlineVIS, StepOutput, StepState
from streamseg.predictor.checkpoint import checkpoint_vocabulary, load_checkpoint, load_weights
from streamseg.predictor.postprocess import (
    QueryScores,
    argmax_scores,
    continuous_pieces,
    drop_pieces,
    mask2former_scores,
    paste_mask,
)
from streamseg.predictor.target_fallback import borrowed_track, linked_track
from streamseg.predictor.targets import TargetBook, TargetInfo, make_prompt
from streamseg.tracking.lifecycle import FREE, SlotTracks, TrackLifecycle
from streamseg.tracking.match import EmbeddingMatcher, MatchTracks
from streamseg.vocab.encoders import encoder_id_for_spec
from streamseg.vocab.files import check_vocabulary, resolve_vocabulary


@dataclass
class SegmenterState:
    """Everything one stream needs between frames; constant size over an endless stream."""

    model_state: StepState  # queries, per-slot memory, TCM window + cache (tensors)
    tracks: SlotTracks | MatchTracks  # track IDs, running scores, miss counters (per slot / per row)
    vocabulary: Vocabulary
    text_emb: torch.Tensor  # (K, text_dim) on the model's device
    pending_vocabulary: Vocabulary | None = None  # applied at the start of the next step
    frames: int = 0
    targets: TargetBook = dataclasses.field(default_factory=TargetBook)  # prompted targets
    # live class tracks' last shown masks at the mask resolution (postprocess.track_continuity)
    track_refs: dict[int, np.ndarray] = dataclasses.field(default_factory=dict)


class OnlineSegmenter:
    """Implements streamseg.interface.Segmenter (plus ``propagate``) for OnlineVIS."""

    def __init__(self, model: OnlineVIS, config: Config, encoder_id: str,
                 vocabulary: Vocabulary | None, device: str | torch.device = "cpu") -> None:
        self.model = model
        self.config = config
        self.encoder_id = encoder_id  # text encoder the model's classifier expects
        self.vocabulary = vocabulary  # default for init_state()
        self.device = torch.device(device)
        self.lifecycle = TrackLifecycle(config.tracker)
        self.matcher = EmbeddingMatcher(config.tracker) if config.tracker.mode != "propagate" else None
        self.targets_trained = True  # False: the checkpoint had no target-encoder weights
        self.trained_names: list[str] | None = None  # the checkpoint's training classes (None: untrained)
        thr = config.tracker.mask_threshold
        self._mask_logit_thr = math.log(thr / (1.0 - thr))  # sigmoid(x) >= thr  <=>  x >= this

    # ------------------------------------------------------------------------ Segmenter protocol
    def init_state(self, vocabulary: Vocabulary | None = None) -> SegmenterState:
        vocab = vocabulary or self.vocabulary
        if vocab is None:
            raise ConfigError("no vocabulary: set vocabulary.names or vocabulary.file in the config, "
                              "or pass one to init_state")
        self._check(vocab)
        q = self.config.model.num_queries
        tracks = (self.lifecycle.new_state(q) if self.matcher is None
                  else self.matcher.new_state(q, self.config.model.hidden_dim))
        return SegmenterState(model_state=self.model.new_state(1, self.device), tracks=tracks,
                              vocabulary=vocab, text_emb=self._text_tensor(vocab))

    def set_vocabulary(self, state: SegmenterState, vocabulary: Vocabulary) -> None:
        """Checked now (a wrong encoder fails here, not mid-stream); takes effect on the next step."""
        self._check(vocabulary)
        state.pending_vocabulary = vocabulary

    def step(self, state: SegmenterState, frame: Frame) -> Tracks:
        t_start = time.perf_counter()
        if state.pending_vocabulary is not None:
            state.vocabulary = state.pending_vocabulary
            state.text_emb = self._text_tensor(state.vocabulary)
            state.pending_vocabulary = None
        image = torch.from_numpy(np.ascontiguousarray(frame.image))[None].to(self.device)
        precision = self.config.model.autocast
        autocast = (torch.autocast("cuda", dtype=torch.bfloat16 if precision == "bf16" else torch.float16)
                    if self.device.type == "cuda" and precision != "off" else nullcontext())
        pending = state.targets.pending
        prompts = None
        if pending:
            in_h, in_w = self.model.input_size(frame.height, frame.width)
            prompts = [[p.to_input(frame.height, frame.width, in_h, in_w) for _, p in pending]]
        if self.config.tracker.mode == "match":  # an image model: every class query starts fresh
            self.model.reset_slots(state.model_state, torch.ones(1, self.config.model.num_queries,
                                                                 dtype=torch.bool))
        with torch.inference_mode(), autocast:
            out = self.model.step(state.model_state, image, state.text_emb, prompts)
        if pending:
            assert out.added_slots is not None
            for (track_id, _), slot in zip(pending, out.added_slots.tolist()):
                info = state.targets.targets[track_id]
                info.slot, info.added_frame = int(slot), state.frames
            state.targets.pending = []
        with torch.inference_mode():
            tracks = self._postprocess(state, out, frame)
        state.frames += 1
        tracks.timings_ms["total"] = (time.perf_counter() - t_start) * 1e3
        return tracks

    def propagate(self, frames: Iterable[Frame], vocabulary: Vocabulary | None = None) -> Iterator[Tracks]:
        """Segment and track a sequence of frames with a fresh state, yielding each frame's final Tracks."""
        state = self.init_state(vocabulary)
        for frame in frames:
            yield self.step(state, frame)

    def frame_logits(self, pixel_values: torch.Tensor) -> dict[str, torch.Tensor]:
        """One frame through the network as an image model, for parity checks: ``pixel_values``
        an already normalised float tensor (B, 3, H, W), H and W multiples of 32; fresh queries,
        no memory, no TIM; the default vocabulary. Returns {"class_logits": (B, Q, K+1),
        "mask_logits": (B, Q, H/4, W/4)} in float32 (the same as transformers'
        Mask2FormerForUniversalSegmentation's class_queries_logits / masks_queries_logits for an
        imported model)."""
        if self.vocabulary is None:
            raise ConfigError("frame_logits needs the segmenter's default vocabulary")
        with torch.inference_mode():
            out = self.model.frame_logits(pixel_values.to(self.device).float(),
                                          self._text_tensor(self.vocabulary))
        return {"class_logits": out["class_logits"].float(), "mask_logits": out["mask_logits"].float()}

    # ------------------------------------------------------------------------ internals
    def _check(self, vocab: Vocabulary) -> None:
        check_vocabulary(vocab, self.encoder_id, self.config.model.text_dim)

    def _text_tensor(self, vocab: Vocabulary) -> torch.Tensor:
        if vocab.embeddings is None:
            raise ConfigError(f"vocabulary {vocab.names[:3]}... has no text embeddings: build it with a text encoder")
        return torch.from_numpy(np.ascontiguousarray(vocab.embeddings, dtype=np.float32)).to(self.device)

    def _target_instances(self, state: SegmenterState, out: StepOutput, height: int, width: int,
                          shown_logits: dict[int, torch.Tensor]) -> list[Instance]:
        """Each live target's mask this frame (score = mask quality); an empty mask publishes
        nothing this frame but the target stays (no death threshold), unless
        ``postprocess.target_fallback`` lends it the class track it was following."""
        if out.target_slots is None or out.target_masks is None:
            return []
        thr = self._mask_logit_thr
        pp = self.config.postprocess
        by_slot = state.targets.by_slot()
        shown = ({tid: (lg >= thr).cpu().numpy() for tid, lg in shown_logits.items()}
                 if pp.target_fallback else {})
        found = []
        for i, slot in enumerate(out.target_slots.tolist()):
            info = by_slot.get(int(slot))
            if info is None:
                continue
            if info.prompt is not None:  # its first frame: the prompt says where the object is
                if pp.target_fallback and info.reference is None:
                    info.reference = info.prompt.cells(height, width, *out.target_masks.shape[-2:])
                info.prompt = None
            logits, info.reference = continuous_pieces(out.target_masks[0, i].float(), thr,
                                                       info.reference, pp.target_continuity)
            fg = logits >= thr
            if pp.target_fallback:
                own = fg.cpu().numpy()
                if own.any():
                    info.link = linked_track(own, shown, info.link)
                else:
                    taken = {t.link for t in by_slot.values() if t is not info and t.link is not None}
                    info.link = borrowed_track(info.link, info.reference, shown, taken)
                    if info.link is not None and info.link in shown:
                        logits = shown_logits[info.link].float()
                        fg = logits >= thr
                        info.reference = shown[info.link]  # picked up again where the object now is
            area = int(fg.sum())
            if area == 0:
                continue
            # every piece: prompted objects are often split by an occluder (J&F 0.432 with all
            # pieces, 0.426 with the largest only, held out)
            pasted = paste_mask(logits, height, width, thr)
            if pasted is None:
                continue
            quality = float((logits.sigmoid() * fg).sum() / area)
            crop, mask_box = pasted
            found.append(Instance(track_id=info.track_id, class_id=-1, label=info.name, score=quality,
                                  box_xyxy=box_xyxy(mask_box), crop=crop, mask_box=mask_box, target=True))
        return sorted(found, key=lambda inst: inst.track_id)

    # ------------------------------------------------------------------------ targets API
    def add_target(self, state: SegmenterState, points=None, box=None, mask=None, name: str = "target",
                   frame: Frame | None = None) -> int:
        """Follow the object given by ``points`` ((x, y) or [(x, y), ...]), ``box`` (x0, y0, x1, y1)
        or ``mask`` (H, W bool), in source-frame pixels; returns its track ID.

        Without ``frame`` the prompt applies to the next frame ``step`` processes (encoded from
        that frame's features). With ``frame`` (one already in hand, e.g. the last one stepped) it
        is encoded now from that frame and tracked from the next step on."""
        if not self.targets_trained:
            raise ConfigError("this checkpoint has no target-encoder weights: targets need a model "
                              "trained with targets (streamseg train with train.target_ratio > 0)")
        if not isinstance(name, str) or not name:
            raise ConfigError("target name must be a non-empty string")
        book = state.targets
        live = len(book.targets)
        if live >= self.config.model.max_targets:
            raise ConfigError(f"at most {self.config.model.max_targets} targets per stream (model.max_targets)")
        size = (frame.height, frame.width) if frame is not None else None
        prompt = make_prompt(points, box, mask, size)
        track_id = state.tracks.next_id
        state.tracks.next_id += 1
        info = TargetInfo(track_id=track_id, name=name, kind=prompt.kind, prompt=prompt)
        book.targets[track_id] = info
        if frame is None:
            book.pending.append((track_id, prompt))
            return track_id
        image = torch.from_numpy(np.ascontiguousarray(frame.image))[None].to(self.device)
        with torch.inference_mode():
            pixels, (in_h, in_w) = self.model.encode_frame(image)
            slots = self.model.add_targets(state.model_state, [[prompt.to_input(frame.height, frame.width, in_h, in_w)]],
                                           pixels.levels, pixels.mask_features, (in_h, in_w))
        info.slot, info.added_frame = int(slots[0]), state.frames
        return track_id

    def remove_target(self, state: SegmenterState, track_id: int) -> None:
        """Stop following a target (immediately); its ID is never reused."""
        book = state.targets
        info = book.targets.pop(int(track_id), None)
        if info is None:
            raise ConfigError(f"no target with track id {track_id} (targets: "
                              f"{', '.join(str(t) for t in book.targets) or 'none'})")
        book.pending = [(tid, p) for tid, p in book.pending if tid != info.track_id]
        if info.slot is not None:
            self.model.remove_targets(state.model_state, torch.tensor([info.slot]))

    def list_targets(self, state: SegmenterState) -> list[TargetInfo]:
        """The stream's targets by track ID (``as_dict()`` gives track_id, name, kind, pending)."""
        return [state.targets.targets[k] for k in sorted(state.targets.targets)]

    def empty_vocabulary(self) -> Vocabulary:
        """A vocabulary with no classes, for targets only (pure VOS / point tracking)."""
        return Vocabulary(names=[], embeddings=np.zeros((0, self.config.model.text_dim), dtype=np.float32),
                          encoder_id=self.encoder_id)

    def _paste(self, logits: torch.Tensor, height: int, width: int):
        """A published class instance's mask at full resolution (crop and box), its stray pieces
        dropped first (postprocess.min_piece_ratio)."""
        thr = self._mask_logit_thr
        return paste_mask(drop_pieces(logits, thr, self.config.postprocess.min_piece_ratio), height, width, thr)

    def _scores(self, out: StepOutput) -> QueryScores:
        logits, masks = out.pred_logits[0], out.pred_masks[0]
        pp = self.config.postprocess
        if pp.mode == "mask2former":
            return mask2former_scores(logits, masks, pp.top_k, self._mask_logit_thr)
        iou = None if out.pred_quality is None else out.pred_quality[0]
        return argmax_scores(logits, masks, self._mask_logit_thr, iou, pp.quality)

    def _postprocess(self, state: SegmenterState, out: StepOutput, frame: Frame) -> Tracks:
        """Per query: a class and a score (``postprocess.mode``); then the tracker
        (``tracker.mode``); then full-resolution masks and boxes for the published tracks only."""
        timings = {k: float(v) for k, v in out.timings_ms.items()}
        t0 = time.perf_counter()
        scored = self._scores(out)
        scores = scored.score.cpu().numpy()
        rank = None if scored.rank is None else scored.rank.cpu().numpy()
        fg_np = scored.fg.cpu().numpy()
        t1 = time.perf_counter()

        if isinstance(state.tracks, MatchTracks):
            assert self.matcher is not None
            embeds = F.normalize(self.model.decoder.norm(out.query_embed[0].float()), dim=-1)
            matched = self.matcher.update(state.tracks, embeds.cpu().numpy(), scores, fg_np, rank)
            shown, track_id, track_score = matched.track_id != FREE, matched.track_id, matched.score
        else:
            result = self.lifecycle.update(state.tracks, scores, fg_np, rank)
            if result.reset.any():
                self.model.reset_slots(state.model_state, torch.from_numpy(result.reset)[None])
            shown, track_id, track_score = result.visible, result.track_id, result.score
        t2 = time.perf_counter()

        height, width = frame.height, frame.width
        instances: list[Instance] = []
        slots = np.flatnonzero(shown)
        slots = slots[np.argsort(track_id[slots], kind="stable")]
        names = state.vocabulary.names
        cls = scored.class_id.cpu().numpy()
        mask_logits = out.pred_masks[0].float()
        grow = self.config.postprocess.track_continuity
        if grow >= 0:  # forget the references of tracks that ended (bounded by the tracker's rows)
            alive = set(state.tracks.track_id.tolist())
            for tid in [t for t in state.track_refs if t not in alive]:
                del state.track_refs[tid]
        shown_logits: dict[int, torch.Tensor] = {}  # class tracks shown, for the targets' fallback
        for slot in slots:
            logits = mask_logits[slot]
            if grow >= 0:
                tid = int(track_id[slot])
                logits = drop_pieces(logits, self._mask_logit_thr, self.config.postprocess.min_piece_ratio)
                logits, ref = continuous_pieces(logits, self._mask_logit_thr, state.track_refs.get(tid), grow)
                if ref is not None:
                    state.track_refs[tid] = ref
            pasted = self._paste(logits, height, width)
            if pasted is None:
                continue  # vanished in the upsampling (or hidden by track_continuity): nothing to publish
            crop, mask_box = pasted
            shown_logits[int(track_id[slot])] = logits
            instances.append(Instance(
                track_id=int(track_id[slot]), class_id=int(cls[slot]), label=names[int(cls[slot])],
                score=float(track_score[slot]), box_xyxy=box_xyxy(mask_box), crop=crop, mask_box=mask_box))
        instances.extend(self._target_instances(state, out, height, width, shown_logits))
        t3 = time.perf_counter()
        timings["tracker"] = (t2 - t1) * 1e3
        timings["postprocess"] = ((t1 - t0) + (t3 - t2)) * 1e3
        return Tracks(frame_index=frame.index, width=width, height=height, instances=instances,
                      timings_ms=timings)


def build_segmenter(config: Config | None = None, checkpoint: str | None = None,
                    device: str | torch.device = "cpu") -> OnlineSegmenter:
    """Build OnlineVIS from ``config``, load ``checkpoint`` (default: config.checkpoint; none = the
    untrained model), and resolve the default vocabulary (config's names/file, else the checkpoint's).
    With ``config`` omitted, the config stored in the checkpoint is used (imported checkpoints).

    The model's text encoder is the checkpoint's (recorded in it); any vocabulary from another
    encoder is refused with an error naming both.
    """
    if config is None:
        if checkpoint is None:
            raise ConfigError("build_segmenter needs a config or a checkpoint")
        from streamseg.predictor.checkpoint import checkpoint_config

        config = checkpoint_config(load_checkpoint(checkpoint))
    from streamseg.predictor.device import inference_threads

    torch.set_num_threads(inference_threads(config.model.threads))  # process-wide: no per-module setting
    pp = config.postprocess
    if pp.quality != "mask" and not (config.model.quality_head and pp.mode == "argmax"):
        raise ConfigError(f"postprocess.quality: {pp.quality} needs model.quality_head: true (weights "
                          f"trained with it) and postprocess.mode: argmax")
    path = checkpoint if checkpoint is not None else config.checkpoint
    data = load_checkpoint(path) if path else None  # a bad file fails before the model is built
    model_cfg = config.model
    if data is not None:
        model_cfg = dataclasses.replace(model_cfg, pretrained=False)  # the checkpoint brings the weights
    model = OnlineVIS(model_cfg)
    base_dir = Path(config.source_path).parent if config.source_path else None
    vocab = resolve_vocabulary(config.vocabulary, base_dir)
    absent: list[str] = []
    if data is not None:
        absent = load_weights(model, data, where=f"checkpoint {path}")
        ckpt_vocab = checkpoint_vocabulary(data, f"checkpoint {path}")
        encoder_id = ckpt_vocab.encoder_id
        if vocab is None:
            vocab = ckpt_vocab
        elif vocab.encoder_id != encoder_id:
            raise ConfigError(f"vocabulary was built with text encoder '{vocab.encoder_id}' but checkpoint {path} "
                              f"was trained with '{encoder_id}'")
    else:
        encoder_id = vocab.encoder_id if vocab is not None else encoder_id_for_spec(config.vocabulary.encoder)
    model.eval().to(device)
    if model_cfg.cpu_speedups:
        from streamseg.predictor.speedups import apply_speedups

        model = apply_speedups(model, list(model_cfg.cpu_speedups), device)
    segmenter = OnlineSegmenter(model, config, encoder_id, vocab, device)
    # The classes the checkpoint was trained on (run says when a vocabulary shares none of them).
    segmenter.trained_names = list(ckpt_vocab.names) if data is not None else None
    segmenter.targets_trained = not any(k.startswith("target_encoder.") for k in absent)
    if vocab is not None:
        segmenter._check(vocab)
    return segmenter
