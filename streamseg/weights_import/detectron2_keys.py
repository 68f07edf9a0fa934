"""Original detectron2 Mask2Former / MinVIS state dict -> OnlineVIS names, and the sizes it implies.

Names follow the modules of facebookresearch/Mask2Former (MinVIS reuses them unchanged):
``backbone.*`` is detectron2's ResNet (``stem``, ``res2..res5`` bottlenecks with ``shortcut``,
FrozenBN as each conv's ``norm``) or D2SwinTransformer (``patch_embed``, ``layers.i.blocks.j``,
``norm0..3``); ``sem_seg_head.pixel_decoder.*`` the MSDeformAttnPixelDecoder;
``sem_seg_head.predictor.*`` the masked-attention decoder with nn.MultiheadAttention layers, whose
fused ``in_proj`` is split into our q/k/v projections. ResNet maps onto torchvision's ResNet-50
(our "resnet50" backbone, FrozenBatchNorm2d with the same four tensors): Mask2Former's and MinVIS's
R50 configs use torchvision's R-50 (STRIDE_IN_1X1 false: the stride sits in the 3x3 conv, as in
torchvision). Swin maps onto torchvision's Swin, whose fused ``qkv`` matches the original's.
"""
from __future__ import annotations

import math
import re
from typing import Any

import torch

from streamseg.errors import CheckpointError, ConfigError
from streamseg.model.config import ModelConfig
from streamseg.weights_import.rename import Rule, apply_rules, refuse_unknown, split_in_proj

_PD = "sem_seg_head.pixel_decoder."
_PR = "sem_seg_head.predictor."
_IGNORED = re.compile(r"criterion\.empty_weight|pixel_(mean|std)|.*\.num_batches_tracked"
                      r"|backbone\.layers\.\d+\.blocks\.\d+\.attn\.relative_position_index")
_RES_STAGE = {"2": "backbone.stages.0.4", "3": "backbone.stages.1", "4": "backbone.stages.2",
              "5": "backbone.stages.3"}  # torchvision layer1 sits in our stage 0 after the stem
_BN = r"(weight|bias|running_mean|running_var)"

_BACKBONE: list[Rule] = [
    # ResNet (torchvision layout: stem = conv1, bn1, relu, maxpool, layer1)
    (r"stem\.conv1\.weight", "backbone.stages.0.0.weight"),
    (rf"stem\.conv1\.norm\.{_BN}", r"backbone.stages.0.1.\1"),
    (r"res([2-5])\.(\d+)\.conv([123])\.weight", lambda m: f"{_RES_STAGE[m[1]]}.{m[2]}.conv{m[3]}.weight"),
    (rf"res([2-5])\.(\d+)\.conv([123])\.norm\.{_BN}", lambda m: f"{_RES_STAGE[m[1]]}.{m[2]}.bn{m[3]}.{m[4]}"),
    (r"res([2-5])\.(\d+)\.shortcut\.weight", lambda m: f"{_RES_STAGE[m[1]]}.{m[2]}.downsample.0.weight"),
    (rf"res([2-5])\.(\d+)\.shortcut\.norm\.{_BN}",
     lambda m: f"{_RES_STAGE[m[1]]}.{m[2]}.downsample.1.{m[3]}"),
    # Swin (torchvision layout: stage i = (patch embed | merge of stage i-1), blocks)
    (r"patch_embed\.proj\.(weight|bias)", r"backbone.stages.0.0.0.\1"),
    (r"patch_embed\.norm\.(weight|bias)", r"backbone.stages.0.0.2.\1"),
    (r"layers\.(\d+)\.blocks\.(\d+)\.(norm1|norm2)\.(weight|bias)", r"backbone.stages.\1.1.\2.\3.\4"),
    (r"layers\.(\d+)\.blocks\.(\d+)\.attn\.(qkv|proj)\.(weight|bias)", r"backbone.stages.\1.1.\2.attn.\3.\4"),
    (r"layers\.(\d+)\.blocks\.(\d+)\.attn\.relative_position_bias_table",
     r"backbone.stages.\1.1.\2.attn.relative_position_bias_table"),
    (r"layers\.(\d+)\.blocks\.(\d+)\.mlp\.fc1\.(weight|bias)", r"backbone.stages.\1.1.\2.mlp.0.\3"),
    (r"layers\.(\d+)\.blocks\.(\d+)\.mlp\.fc2\.(weight|bias)", r"backbone.stages.\1.1.\2.mlp.3.\3"),
    (r"layers\.(\d+)\.downsample\.(reduction\.weight|norm\.weight|norm\.bias)",
     lambda m: f"backbone.stages.{int(m[1]) + 1}.0.{m[2]}"),
    (r"norm([0-3])\.(weight|bias)", r"backbone.norms.\1.\2"),
]
_PIXEL: list[Rule] = [
    (r"input_proj\.([0-2])\.([01])\.(weight|bias)", r"pixel_decoder.input_proj.\1.\2.\3"),
    (r"transformer\.level_embed", "pixel_decoder.level_embed"),
    (r"transformer\.encoder\.layers\.(\d+)\.self_attn\."
     r"(sampling_offsets|attention_weights|value_proj|output_proj)\.(weight|bias)",
     r"pixel_decoder.layers.\1.attn.\2.\3"),
    (r"transformer\.encoder\.layers\.(\d+)\.norm1\.(weight|bias)", r"pixel_decoder.layers.\1.norm.\2"),
    (r"transformer\.encoder\.layers\.(\d+)\.(linear1|linear2)\.(weight|bias)",
     r"pixel_decoder.layers.\1.ffn.\2.\3"),
    (r"transformer\.encoder\.layers\.(\d+)\.norm2\.(weight|bias)", r"pixel_decoder.layers.\1.ffn.norm.\2"),
    (r"adapter_1\.weight", "pixel_decoder.lateral.0.weight"),
    (r"adapter_1\.norm\.(weight|bias)", r"pixel_decoder.lateral.1.\1"),
    (r"layer_1\.weight", "pixel_decoder.output.0.weight"),
    (r"layer_1\.norm\.(weight|bias)", r"pixel_decoder.output.1.\1"),
    (r"mask_features\.(weight|bias)", r"pixel_decoder.mask_proj.\1"),
]
_PREDICTOR: list[Rule] = [
    (r"query_feat\.weight", "query_feat.weight"),
    (r"query_embed\.weight", "query_pos.weight"),
    (r"level_embed\.weight", "decoder.level_embed"),
    (r"transformer_self_attention_layers\.(\d+)\.self_attn\.out_proj\.(weight|bias)",
     r"decoder.self_attn.\1.attn.out_proj.\2"),
    (r"transformer_self_attention_layers\.(\d+)\.norm\.(weight|bias)", r"decoder.self_attn.\1.norm.\2"),
    (r"transformer_cross_attention_layers\.(\d+)\.multihead_attn\.out_proj\.(weight|bias)",
     r"decoder.cross.\1.attn.out_proj.\2"),
    (r"transformer_cross_attention_layers\.(\d+)\.norm\.(weight|bias)", r"decoder.cross.\1.norm.\2"),
    (r"transformer_ffn_layers\.(\d+)\.(linear1|linear2|norm)\.(weight|bias)", r"decoder.ffn.\1.\2.\3"),
    (r"decoder_norm\.(weight|bias)", r"decoder.norm.\1"),
    (r"mask_embed\.layers\.([0-2])\.(weight|bias)", r"decoder.mask_embed.layers.\1.\2"),
    (r"class_embed\.(weight|bias)", r"decoder.classifier.fc.\1"),
]
_IN_PROJ = re.compile(r"transformer_(self|cross)_attention_layers\.(\d+)\.(self_attn|multihead_attn)"
                      r"\.in_proj_(weight|bias)")


def map_state_dict(src: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """detectron2 tensors renamed to OnlineVIS names (fused attention input projections split);
    refuses keys no Mask2Former / MinVIS module has."""
    out: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for key, value in src.items():
        if _IGNORED.fullmatch(key):
            continue
        target = None
        if key.startswith("backbone."):
            target = apply_rules(_BACKBONE, key[len("backbone."):])
        elif key.startswith(_PD):
            target = apply_rules(_PIXEL, key[len(_PD):])
        elif key.startswith(_PR):
            rest = key[len(_PR):]
            m = _IN_PROJ.fullmatch(rest)
            if m:
                layer = "self_attn" if m[1] == "self" else "cross"
                split_in_proj(value, f"decoder.{layer}.{m[2]}.attn.", m[4], out)
                continue
            if rest.startswith("input_proj."):
                raise CheckpointError(f"{key}: a decoder input projection (pixel decoder channels != "
                                      "hidden_dim, or ENFORCE_INPUT_PROJ) is not supported")
            target = apply_rules(_PREDICTOR, rest)
        if target is None:
            unknown.append(key)
            continue
        out[target] = value
    refuse_unknown(unknown, "detectron2 Mask2Former/MinVIS")
    return out


def _count(state: dict[str, Any], pattern: str) -> int:
    """How many distinct indices ``pattern`` (with one ``(\\d+)`` group) matches."""
    rx = re.compile(pattern)
    return len({m[1] for k in state if (m := rx.match(k))})


def _need(state: dict[str, torch.Tensor], key: str, what: str) -> torch.Tensor:
    if key not in state:
        raise CheckpointError(f"not a detectron2 {what} checkpoint: no {key}")
    return state[key]


def _backbone_config(state: dict[str, torch.Tensor]) -> dict[str, Any]:
    if "backbone.stem.conv1.weight" in state:
        blocks = [_count(state, rf"backbone\.res{s}\.(\d+)\.conv1\.weight") for s in range(2, 6)]
        if blocks != [3, 4, 6, 3] or "backbone.res2.0.conv3.weight" not in state:
            raise CheckpointError(f"detectron2 ResNet with {'/'.join(map(str, blocks))} blocks per stage: "
                                  "only ResNet-50 (3/4/6/3 bottlenecks) is supported")
        return {"backbone": "resnet50"}
    if "backbone.patch_embed.proj.weight" in state:
        if "backbone.absolute_pos_embed" in state:
            raise CheckpointError("Swin with absolute position embeddings (APE) is not supported")
        proj = state["backbone.patch_embed.proj.weight"]
        if tuple(proj.shape[-2:]) != (4, 4):
            raise CheckpointError(f"Swin patch size {tuple(proj.shape[-2:])}: only 4x4 is supported")
        depths = [_count(state, rf"backbone\.layers\.{i}\.blocks\.(\d+)\.norm1\.weight") for i in range(4)]
        if min(depths) < 1 or _count(state, r"backbone\.layers\.(\d+)\.blocks\.0\.norm1\.weight") != 4:
            raise CheckpointError(f"Swin with blocks per stage {depths}: four stages are needed")
        tables = [state[f"backbone.layers.{i}.blocks.0.attn.relative_position_bias_table"] for i in range(4)]
        side = math.isqrt(tables[0].shape[0])
        if side * side != tables[0].shape[0] or side % 2 == 0:
            raise CheckpointError(f"Swin relative position table of {tables[0].shape[0]} rows is not "
                                  "(2*window-1)^2")
        return {"backbone": "swin", "swin_embed_dim": int(proj.shape[0]), "swin_depths": depths,
                "swin_heads": [int(t.shape[1]) for t in tables], "swin_window": (side + 1) // 2}
    raise CheckpointError("not a detectron2 Mask2Former checkpoint: the backbone is neither detectron2's "
                          "ResNet (backbone.stem.*) nor D2SwinTransformer (backbone.patch_embed.*)")


def model_config(state: dict[str, torch.Tensor], heads: int = 8, **overrides: Any) -> tuple[ModelConfig, int]:
    """The ModelConfig a detectron2 Mask2Former state dict's shapes imply, and its class count.

    Shapes fix every size but the attention heads (a fused in_proj is 3*C rows whatever the
    split): ``heads`` (Mask2Former's and MinVIS's NHEADS, 8) serves the decoder and the deformable
    encoder, whose sampling points follow from it."""
    what = "Mask2Former/MinVIS"
    feat = _need(state, _PR + "query_feat.weight", what)
    cls = _need(state, _PR + "class_embed.weight", what)
    dec_ffn = _need(state, _PR + "transformer_ffn_layers.0.linear1.weight", what)
    mask = _need(state, _PD + "mask_features.weight", what)
    weights = _need(state, _PD + "transformer.encoder.layers.0.self_attn.attention_weights.weight", what)
    enc_ffn = _need(state, _PD + "transformer.encoder.layers.0.linear1.weight", what)
    conv_dim = int(_need(state, _PD + "input_proj.0.0.weight", what).shape[0])
    levels = _count(state, r"sem_seg_head\.pixel_decoder\.input_proj\.(\d+)\.0\.weight")
    hidden = int(feat.shape[1])
    if levels != 3:
        raise CheckpointError(f"pixel decoder with {levels} deformable levels: Mask2Former's 3 are needed")
    if conv_dim != hidden:
        raise CheckpointError(f"pixel decoder channels {conv_dim} != decoder hidden_dim {hidden}")
    if heads < 1 or weights.shape[0] % (3 * heads):
        raise CheckpointError(f"deformable attention of {weights.shape[0]} weights does not split into "
                              f"{heads} heads x 3 levels (set --heads)")
    cfg = ModelConfig(
        **_backbone_config(state), pretrained=False, pixel_decoder="deformable",
        enc_layers=_count(state, r"sem_seg_head\.pixel_decoder\.transformer\.encoder\.layers\.(\d+)\.linear1\.weight"),
        enc_heads=heads, enc_points=int(weights.shape[0]) // (3 * heads), enc_ffn_dim=int(enc_ffn.shape[0]),
        hidden_dim=hidden, mask_dim=int(mask.shape[0]), num_queries=int(feat.shape[0]),
        dec_layers=_count(state, r"sem_seg_head\.predictor\.transformer_cross_attention_layers\.(\d+)\.norm\.weight"),
        nheads=heads, ffn_dim=int(dec_ffn.shape[0]), masked_levels=3, text_dim=int(cls.shape[0]) - 1,
        classifier="linear", layout="mask2former", taxonomy=False,
        input_short_side=overrides.pop("input_short_side", 480),
        input_max_long_side=overrides.pop("input_max_long_side", 1333), **overrides)
    try:
        cfg.validate()
    except ConfigError as exc:
        raise CheckpointError(f"the checkpoint's sizes make no valid model ({exc})") from None
    return cfg, int(cls.shape[0]) - 1
