"""OnlineVIS: the whole network, run one frame at a time over a bounded per-stream state.

Per step: backbone -> pixel decoder -> (TCM once per window of W frames) -> memory read ->
decoder (TIM + masked attention). The output queries of frame t are the input queries of frame
t+1 (GenVIS's online mode) and are pushed into each slot's FIFO memory of M prototypes. Training
(``forward_clip``) runs exactly this online path over a clip, with gradients.

StepState holds only tensors of constant size: queries (B, Q, C), memory (B, Q, M, C), its valid
counts (B, Q), E_T (B, N_T, C), S (B, K) and a deque of at most W stride-32 feature maps (the TCM
window). Nothing grows with the stream's length.
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from streamseg.model.backbone import Backbone, build_backbone, fuse_frozen_batchnorm
from streamseg.model.config import ModelConfig
from streamseg.model.masked_decoder import MaskedDecoder
from streamseg.model.memory import MemoryReader, push_memory
from streamseg.model.pixel_decoder import build_pixel_decoder
from streamseg.model.quality import QualityHead
from streamseg.model.target_encoder import TargetEncoder, TargetPrompt, TargetSlots
from streamseg.model.taxonomy import TaxonomyCompilation

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SIZE_DIVISOR = 32


@dataclass
class StepState:
    """Per-stream (batch of B streams) state; every tensor has a constant size."""

    queries: torch.Tensor | None  # (B, Q, C) output queries of the previous frame; None = learnable
    memory: torch.Tensor  # (B, Q, M, C) prototypes, newest at index M-1
    memory_len: torch.Tensor  # (B, Q) long, valid entries per slot (<= M)
    taxonomy: torch.Tensor | None = None  # E_T (B, N_T, C), cached until the next window completes
    tcm_scores: torch.Tensor | None = None  # S (B, K) of the latest TCM run
    window: deque = field(default_factory=deque)  # (B, h*w, C) stride-32 features, maxlen W
    windows_done: int = 0  # complete TCM windows so far (0 = still in the first window)
    steps: int = 0
    text_emb: torch.Tensor | None = None  # the vocabulary E was compiled from (to notice a swap)
    targets: TargetSlots | None = None  # prompted targets (fixed capacity), allocated on first use


@dataclass
class StepOutput:
    pred_logits: torch.Tensor  # (B, Q, K+1), index K = no-object
    pred_masks: torch.Tensor  # (B, Q, H/4, W/4) mask logits at stride 4 of the inference size
    aux: list[tuple[torch.Tensor, torch.Tensor]]  # (logits, masks) of every decoder layer, the
    # last entry being the final prediction; empty when gradients are off (inference)
    taxo_logits: torch.Tensor | None  # (B, Q, K+1) right after the first TIM (eq. 8's L_taxo)
    tcm_scores: torch.Tensor | None  # (B, K) S of eq. 5 from the latest window
    query_embed: torch.Tensor  # (B, Q, C) output queries
    image_size: tuple[int, int]  # (H, W) of the network input (the inference size)
    timings_ms: dict[str, float] = field(default_factory=dict)
    # Targets decoded this frame (None without any): slot indices into StepState.targets, their
    # mask logits (B, N, H/4, W/4) and, with gradients, every decoder layer's target masks.
    target_slots: torch.Tensor | None = None
    target_masks: torch.Tensor | None = None
    target_aux: list[torch.Tensor] = field(default_factory=list)
    added_slots: torch.Tensor | None = None  # slots given to this frame's prompts (in order)
    # (B, Q) IoU logits of the class queries' final masks (model.quality_head; None without it)
    pred_quality: torch.Tensor | None = None


class _FusedBackboneCache:
    """The BN-folded inference copy of the backbone, with the identity (storage, version) of the
    weights it was built from; a plain object, so it is not part of the module's state_dict."""

    def __init__(self) -> None:
        self.key: tuple | None = None
        self.module: Backbone | None = None

    def get(self, backbone: Backbone) -> Backbone:
        tensors = [*backbone.parameters(), *backbone.buffers()]
        # inference tensors (weights moved under inference_mode) have no version counter; their
        # storage pointer still changes with every move or reload
        key = tuple((t.data_ptr(), -1 if t.is_inference() else t._version, t.dtype) for t in tensors)
        if key != self.key or self.module is None:
            self.module = fuse_frozen_batchnorm(backbone)
            self.key = key
        return self.module


def _stage_clock(device: torch.device):
    """perf_counter for stage timings; on CUDA it synchronises first, so that each stage's time
    lands on that stage and not on whichever later one happens to wait for the GPU."""
    if device.type != "cuda":
        return time.perf_counter

    def clock() -> float:
        torch.cuda.synchronize(device)
        return time.perf_counter()

    return clock


class OnlineVIS(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        dim, mask_dim = cfg.hidden_dim, cfg.mask_channels
        self.memory_length = cfg.memory_length
        self.backbone = build_backbone(cfg.backbone, cfg.pretrained, cfg)
        self.backbone.to(memory_format=torch.channels_last)
        self._fused_backbone = _FusedBackboneCache()  # rebuilt when the weights change
        self.pixel_decoder = build_pixel_decoder(
            cfg.pixel_decoder, self.backbone.channels, dim, mask_dim, cfg.enc_layers, cfg.enc_heads,
            cfg.enc_points, cfg.enc_ffn_dim, cfg.dropout, mask2former=cfg.layout == "mask2former",
            refine=cfg.fpn_refine,
            fine_channels=self.backbone.fine_channels if isinstance(self.backbone, Backbone) else 0)
        self.tcm = (TaxonomyCompilation(cfg.text_dim, dim, cfg.adapter_dim, cfg.nheads, cfg.ffn_dim,
                                        cfg.taxonomy_size, cfg.dropout) if cfg.taxonomy else None)
        self.memory_reader = MemoryReader(dim, cfg.nheads, self.memory_length, cfg.dropout)
        self.decoder = MaskedDecoder(dim, mask_dim, cfg.dec_layers, cfg.nheads, cfg.ffn_dim,
                                     cfg.text_dim, cfg.taxonomy, cfg.masked_levels, cfg.dropout,
                                     classifier=cfg.classifier, mask2former=cfg.layout == "mask2former",
                                     infer_layers=cfg.infer_layers)
        self.query_feat = nn.Embedding(cfg.num_queries, dim)  # initial (and reset) query content
        self.query_pos = nn.Embedding(cfg.num_queries, dim)  # per-slot positional embedding
        self.target_encoder = TargetEncoder(dim, mask_dim, cfg.nheads, cfg.ffn_dim, cfg.target_layers,
                                            cfg.dropout)
        self.quality_head = QualityHead(dim) if cfg.quality_head else None
        self.register_buffer("pixel_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255,
                             persistent=False)
        self.register_buffer("pixel_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255,
                             persistent=False)

    # ----------------------------------------------------------------------------- input
    def input_size(self, height: int, width: int) -> tuple[int, int]:
        """Inference size for a height x width source: short side -> input_short_side (long side
        capped at input_max_long_side), both rounded to a multiple of 32."""
        cfg = self.cfg
        scale = min(cfg.input_short_side / min(height, width),
                    cfg.input_max_long_side / max(height, width))

        def snap(v: float) -> int:
            return max(SIZE_DIVISOR, int(round(v / SIZE_DIVISOR)) * SIZE_DIVISOR)

        return snap(height * scale), snap(width * scale)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, H, W, 3) or (B, 3, H, W) RGB -> normalised float (B, 3, h, w) at the
        inference size, channels_last (faster convolutions on CPU)."""
        if images.dim() != 4:
            raise ValueError(f"images must be 4-D (B,H,W,3) or (B,3,H,W), got {tuple(images.shape)}")
        if images.shape[1] != 3 and images.shape[-1] == 3:
            images = images.permute(0, 3, 1, 2)
        x = images.to(device=self.pixel_mean.device)
        size = self.input_size(x.shape[2], x.shape[3])
        if x.dtype == torch.uint8 and x.device.type == "cpu":
            # torch's uint8 antialiased resize (channels_last, as an HWC frame already is) is ~7x
            # faster than the float one on CPU; results differ by rounding (<= 1 grey level)
            x = x.contiguous(memory_format=torch.channels_last)
            if (x.shape[2], x.shape[3]) != size:
                x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
            x = x.float()
        else:
            x = x.float()
            if (x.shape[2], x.shape[3]) != size:
                x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        x = (x - self.pixel_mean) / self.pixel_std
        return x.contiguous(memory_format=torch.channels_last)

    # ----------------------------------------------------------------------------- state
    def new_state(self, batch: int, device: torch.device | str = "cpu") -> StepState:
        q, m, c = self.cfg.num_queries, self.memory_length, self.cfg.hidden_dim
        dtype = self.query_feat.weight.dtype
        return StepState(
            queries=None,
            memory=torch.zeros(batch, q, m, c, device=device, dtype=dtype),
            memory_len=torch.zeros(batch, q, dtype=torch.long, device=device),
            window=deque(maxlen=self.cfg.taxonomy_window),
        )

    def reset_slots(self, state: StepState, slots: torch.Tensor) -> None:
        """slots (B, Q) bool: those slots restart from the learnable query with an empty memory."""
        slots = slots.to(state.memory_len.device)
        if state.queries is not None:
            init = self.query_feat.weight[None].to(state.queries.dtype)
            state.queries = torch.where(slots[..., None], init, state.queries)
        state.memory = state.memory.masked_fill(slots[..., None, None], 0.0)
        state.memory_len = state.memory_len.masked_fill(slots, 0)

    # ----------------------------------------------------------------------------- steps
    def step(self, state: StepState, images: torch.Tensor, text_emb: torch.Tensor,
             prompts: list[list[TargetPrompt]] | None = None) -> StepOutput:
        """One frame for B streams. images: uint8 (preprocessed here) or the float output of
        ``preprocess``; text_emb (K, text_dim) (K may be 0: targets only); prompts[b]: new targets
        on this frame (input-size coordinates), encoded from its features before decoding.
        Updates ``state`` (queries, memory, TCM cache, targets)."""
        timings: dict[str, float] = {}
        clock = _stage_clock(images.device)
        t0 = clock()
        if images.dtype == torch.uint8:
            images = self.preprocess(images)
            t1 = clock()
            timings["preprocess"] = (t1 - t0) * 1e3
            t0 = t1
        text_emb = text_emb.to(device=images.device, dtype=self.query_feat.weight.dtype)
        feats = self._backbone_for_step()(images)
        t1 = clock()
        timings["backbone"] = (t1 - t0) * 1e3
        pixels = self.pixel_decoder(feats)
        t2 = clock()
        timings["pixel_decoder"] = (t2 - t1) * 1e3
        if self.tcm is not None and text_emb.shape[0] > 0:
            self._update_taxonomy(state, pixels.levels[0], text_emb)
        t3 = clock()
        timings["tcm"] = (t3 - t2) * 1e3
        image_size = (images.shape[2], images.shape[3])
        added = None
        if prompts and any(prompts):
            added = self.add_targets(state, prompts, pixels.levels, pixels.mask_features, image_size)
            t4 = clock()
            timings["target_encoder"] = (t4 - t3) * 1e3
            t3 = t4

        b = images.shape[0]
        num_q = self.cfg.num_queries
        queries = state.queries
        if queries is None:
            queries = self.query_feat.weight[None].expand(b, -1, -1)
        query_pos = self.query_pos.weight[None].expand(b, -1, -1)
        memory, memory_len = state.memory, state.memory_len
        slots = None
        tg = state.targets
        if tg is not None and bool(tg.active.any()):
            # targets join the class queries: one query set for memory read and decoder
            slots = torch.nonzero(tg.active.any(0)).flatten()
            queries = torch.cat([queries, tg.queries[:, slots]], 1)
            query_pos = torch.cat([query_pos, tg.pos[:, slots]], 1)
            memory = torch.cat([memory, tg.memory[:, slots]], 1)
            memory_len = torch.cat([memory_len, tg.memory_len[:, slots]], 1)
        queries = self.memory_reader(queries, memory, memory_len)
        taxonomy = state.taxonomy if text_emb.shape[0] > 0 else None
        out = self.decoder(queries, query_pos, pixels.levels, pixels.mask_features, text_emb,
                           taxonomy, need_aux=torch.is_grad_enabled())
        memory, memory_len = push_memory(memory, memory_len, out.queries)
        state.queries = out.queries[:, :num_q]
        state.memory, state.memory_len = memory[:, :num_q], memory_len[:, :num_q]
        target_masks, target_aux = None, []
        logits, masks, aux = out.logits, out.masks, out.aux
        if slots is not None:
            assert tg is not None
            tg.queries = tg.queries.index_copy(1, slots, out.queries[:, num_q:])
            tg.memory = tg.memory.index_copy(1, slots, memory[:, num_q:])
            tg.memory_len = tg.memory_len.index_copy(1, slots, memory_len[:, num_q:])
            target_masks = masks[:, num_q:]
            target_aux = [mk[:, num_q:] for _, mk in aux]
            sliced = [(lg[:, :num_q], mk[:, :num_q]) for lg, mk in aux]
            # the final prediction stays the very tensor of aux's last entry (the loss dedups by identity)
            last_is_final = bool(aux) and aux[-1][0] is logits
            logits, masks = sliced[-1] if last_is_final else (logits[:, :num_q], masks[:, :num_q])
            aux = sliced
        quality = None
        if self.quality_head is not None:
            quality = self.quality_head(self.decoder.norm(state.queries), masks)
        state.steps += 1
        timings["decoder"] = (clock() - t3) * 1e3  # memory read + decoder layers (+ quality head)
        return StepOutput(pred_logits=logits, pred_masks=masks, aux=aux,
                          taxo_logits=None if out.taxo_logits is None else out.taxo_logits[:, :num_q],
                          tcm_scores=state.tcm_scores, query_embed=state.queries, image_size=image_size,
                          timings_ms=timings, target_slots=slots, target_masks=target_masks,
                          target_aux=target_aux, added_slots=added, pred_quality=quality)

    # ----------------------------------------------------------------------------- targets
    def encode_frame(self, images: torch.Tensor):
        """Backbone + pixel decoder of a frame (for a prompt on a frame already stepped)."""
        if images.dtype == torch.uint8:
            images = self.preprocess(images)
        return self.pixel_decoder(self._backbone_for_step()(images)), (images.shape[2], images.shape[3])

    def _target_slots(self, state: StepState, batch: int, device: torch.device, dtype: torch.dtype) -> TargetSlots:
        if state.targets is None:
            n, m, c = self.cfg.max_targets, self.memory_length, self.cfg.hidden_dim
            state.targets = TargetSlots(
                queries=torch.zeros(batch, n, c, device=device, dtype=dtype),
                pos=torch.zeros(batch, n, c, device=device, dtype=dtype),
                memory=torch.zeros(batch, n, m, c, device=device, dtype=dtype),
                memory_len=torch.zeros(batch, n, dtype=torch.long, device=device),
                active=torch.zeros(batch, n, dtype=torch.bool, device=device))
        return state.targets

    def add_targets(self, state: StepState, prompts: list[list[TargetPrompt]], levels: list[torch.Tensor],
                    mask_features: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
        """Encode prompts[b] (N each) into free target slots; returns the slots (N,) used (the same
        slot indices in every stream of the batch). Raises ValueError when the capacity is full."""
        b, n = len(prompts), len(prompts[0])
        queries, pos = self.target_encoder(levels, mask_features, prompts, image_size)
        tg = self._target_slots(state, b, queries.device, queries.dtype)
        free = torch.nonzero(~tg.active.any(0)).flatten()
        if free.numel() < n:
            raise ValueError(f"at most {tg.capacity} targets per stream (model.max_targets)")
        slots = free[:n]
        tg.queries = tg.queries.index_copy(1, slots, queries.to(tg.queries.dtype))
        tg.pos = tg.pos.index_copy(1, slots, pos.to(tg.pos.dtype))
        tg.memory = tg.memory.index_fill(1, slots, 0.0)
        tg.memory_len = tg.memory_len.index_fill(1, slots, 0)
        tg.active = tg.active.index_fill(1, slots, True)
        return slots

    def remove_targets(self, state: StepState, slots: torch.Tensor) -> None:
        """Free target slots (their content is dropped; the slot may be reused by a new target)."""
        tg = state.targets
        if tg is None:
            return
        slots = slots.to(tg.active.device)
        tg.active = tg.active.index_fill(1, slots, False)
        tg.memory_len = tg.memory_len.index_fill(1, slots, 0)

    def frame_logits(self, images: torch.Tensor, text_emb: torch.Tensor) -> dict[str, torch.Tensor]:
        """One frame as an image model: normalised float images (B, 3, H, W), fresh learnable
        queries, no memory read, no TCM/TIM; H and W multiples of 32. Returns class_logits
        (B, Q, K+1), mask_logits (B, Q, H/4, W/4) and the output queries (B, Q, C)."""
        feats = self._backbone_for_step()(images)
        pixels = self.pixel_decoder(feats)
        b = images.shape[0]
        text_emb = text_emb.to(device=images.device, dtype=self.query_feat.weight.dtype)
        out = self.decoder(self.query_feat.weight[None].expand(b, -1, -1),
                           self.query_pos.weight[None].expand(b, -1, -1), pixels.levels,
                           pixels.mask_features, text_emb, None, need_aux=False)
        return {"class_logits": out.logits, "mask_logits": out.masks, "queries": out.queries}

    def _backbone_for_step(self) -> nn.Module:
        """With gradients off and in eval mode, run the BN-folded copy (identical outputs)."""
        if self.training or torch.is_grad_enabled() or not isinstance(self.backbone, Backbone):
            return self.backbone  # (Swin has no batch norm to fold)
        return self._fused_backbone.get(self.backbone)

    def _update_taxonomy(self, state: StepState, coarse: torch.Tensor, text_emb: torch.Tensor) -> None:
        """Buffer this frame's stride-32 features; run TCM when the window of W frames completes,
        on every frame of the first window (frames seen so far), or when the vocabulary changed."""
        if self.tcm is None:
            raise RuntimeError("_update_taxonomy called on a model built without TCM")
        tokens = coarse.flatten(2).transpose(1, 2)  # (B, h*w, C)
        if state.window and state.window[0].shape != tokens.shape:
            state.window.clear()  # the source changed size: a new window starts
        state.window.append(tokens)
        full = len(state.window) == state.window.maxlen
        vocab_changed = state.text_emb is None or not (
            state.text_emb.shape == text_emb.shape and torch.equal(state.text_emb, text_emb))
        if not (full or state.windows_done == 0 or vocab_changed or state.taxonomy is None):
            return
        compiled = self.tcm(text_emb, torch.cat(list(state.window), dim=1))
        state.taxonomy = compiled.embeddings
        state.tcm_scores = compiled.scores
        state.text_emb = text_emb
        if full:
            state.window.clear()
            state.windows_done += 1

    def forward_clip(self, clip: torch.Tensor, text_emb: torch.Tensor,
                     prompts: list[list[TargetPrompt]] | None = None, prompt_frame: int = 0) -> list[StepOutput]:
        """clip (T, B, 3, H, W) (uint8, or float from ``preprocess``) -> one StepOutput per frame,
        through the same online path as ``step`` (fresh state), keeping the autograd graph.
        ``prompts`` (input-size coordinates) are given on frame ``prompt_frame``."""
        state = self.new_state(clip.shape[1], self.query_feat.weight.device)
        return [self.step(state, clip[t], text_emb, prompts if t == prompt_frame else None)
                for t in range(clip.shape[0])]

    def forward(self, clip: torch.Tensor, text_emb: torch.Tensor,
                prompts: list[list[TargetPrompt]] | None = None, prompt_frame: int = 0) -> list[StepOutput]:
        return self.forward_clip(clip, text_emb, prompts, prompt_frame)
