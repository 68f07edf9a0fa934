"""transformers' Mask2FormerForUniversalSegmentation (Swin) state_dict -> OnlineVIS state_dict.

Accepts both the hub's saved names (``encoder.layers...attention.self.query``) and transformers
v5's in-memory names (``encoder.swin.encoder...attention.q_proj``). Query/key/value of a Swin
block are fused into torchvision's ``qkv``; the decoder's nn.MultiheadAttention ``in_proj`` is
split into q/k/v projections.
"""
from __future__ import annotations

import re

import torch

from streamseg.errors import CheckpointError
from streamseg.weights_import.rename import apply_rules, refuse_unknown, split_in_proj

_BB = "model.pixel_level_module.encoder."
_PD = "model.pixel_level_module.decoder."
_TM = "model.transformer_module."
_SWIN_RENAMES = [  # transformers' own "swin" conversion mapping (saved -> v5 names)
    ("attention.self.query", "attention.q_proj"), ("attention.self.key", "attention.k_proj"),
    ("attention.self.value", "attention.v_proj"),
    ("attention.self.relative_position_bias_table",
     "attention.relative_position_bias.relative_position_bias_table"),
    ("attention.output.dense", "attention.o_proj"),
    ("intermediate.dense", "mlp.fc1"), ("output.dense", "mlp.fc2")]
_IGNORED = re.compile(r"(criterion\.empty_weight|.*relative_position_index|"
                      r"model\.pixel_level_module\.encoder\.layernorm\..*)$")
_SIMPLE = [  # (regex on the canonical source key, target template)
    (r"embeddings\.patch_embeddings\.projection\.(weight|bias)", r"backbone.stages.0.0.0.\1"),
    (r"embeddings\.norm\.(weight|bias)", r"backbone.stages.0.0.2.\1"),
    (r"encoder\.layers\.(\d+)\.blocks\.(\d+)\.layernorm_before\.(.*)", r"backbone.stages.\1.1.\2.norm1.\3"),
    (r"encoder\.layers\.(\d+)\.blocks\.(\d+)\.layernorm_after\.(.*)", r"backbone.stages.\1.1.\2.norm2.\3"),
    (r"encoder\.layers\.(\d+)\.blocks\.(\d+)\.attention\.o_proj\.(.*)", r"backbone.stages.\1.1.\2.attn.proj.\3"),
    (r"encoder\.layers\.(\d+)\.blocks\.(\d+)\.attention\.relative_position_bias\.relative_position_bias_table",
     r"backbone.stages.\1.1.\2.attn.relative_position_bias_table"),
    (r"encoder\.layers\.(\d+)\.blocks\.(\d+)\.mlp\.fc1\.(.*)", r"backbone.stages.\1.1.\2.mlp.0.\3"),
    (r"encoder\.layers\.(\d+)\.blocks\.(\d+)\.mlp\.fc2\.(.*)", r"backbone.stages.\1.1.\2.mlp.3.\3"),
    (r"hidden_states_norms\.stage(\d)\.(.*)", None),  # stage n -> norms.n-1 (below)
    (r"encoder\.layers\.(\d+)\.downsample\.(reduction|norm)\.(.*)", None),  # stage i -> i+1
]
_PIXEL = [
    (r"level_embed", "pixel_decoder.level_embed"),
    (r"input_projections\.(\d)\.([01])\.(.*)", r"pixel_decoder.input_proj.\1.\2.\3"),
    (r"encoder\.layers\.(\d+)\.self_attn\.(.*)", r"pixel_decoder.layers.\1.attn.\2"),
    (r"encoder\.layers\.(\d+)\.self_attn_layer_norm\.(.*)", r"pixel_decoder.layers.\1.norm.\2"),
    (r"encoder\.layers\.(\d+)\.fc1\.(.*)", r"pixel_decoder.layers.\1.ffn.linear1.\2"),
    (r"encoder\.layers\.(\d+)\.fc2\.(.*)", r"pixel_decoder.layers.\1.ffn.linear2.\2"),
    (r"encoder\.layers\.(\d+)\.final_layer_norm\.(.*)", r"pixel_decoder.layers.\1.ffn.norm.\2"),
    (r"mask_projection\.(.*)", r"pixel_decoder.mask_proj.\1"),
    (r"adapter_1\.([01])\.(.*)", r"pixel_decoder.lateral.\1.\2"),
    (r"layer_1\.([01])\.(.*)", r"pixel_decoder.output.\1.\2"),
]
_TRANSFORMER = [
    (r"queries_embedder\.weight", "query_pos.weight"),
    (r"queries_features\.weight", "query_feat.weight"),
    (r"level_embed\.weight", "decoder.level_embed"),
    (r"decoder\.layers\.(\d+)\.self_attn\.(q_proj|k_proj|v_proj|out_proj)\.(.*)", r"decoder.self_attn.\1.attn.\2.\3"),
    (r"decoder\.layers\.(\d+)\.self_attn_layer_norm\.(.*)", r"decoder.self_attn.\1.norm.\2"),
    (r"decoder\.layers\.(\d+)\.cross_attn\.out_proj\.(.*)", r"decoder.cross.\1.attn.out_proj.\2"),
    (r"decoder\.layers\.(\d+)\.cross_attn_layer_norm\.(.*)", r"decoder.cross.\1.norm.\2"),
    (r"decoder\.layers\.(\d+)\.fc1\.(.*)", r"decoder.ffn.\1.linear1.\2"),
    (r"decoder\.layers\.(\d+)\.fc2\.(.*)", r"decoder.ffn.\1.linear2.\2"),
    (r"decoder\.layers\.(\d+)\.final_layer_norm\.(.*)", r"decoder.ffn.\1.norm.\2"),
    (r"decoder\.layernorm\.(.*)", r"decoder.norm.\1"),
    (r"decoder\.mask_predictor\.mask_embedder\.(\d)\.0\.(.*)", r"decoder.mask_embed.layers.\1.\2"),
]


def _canonical_backbone(rest: str) -> str:
    rest = rest.removeprefix("swin.")
    for old, new in _SWIN_RENAMES:
        rest = rest.replace(old, new)
    return rest


def map_state_dict(src: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Source tensors renamed (and fused/split) to OnlineVIS names; refuses foreign keys."""
    out: dict[str, torch.Tensor] = {}
    qkv: dict[str, dict[str, torch.Tensor]] = {}
    unknown: list[str] = []
    for key, value in src.items():
        if _IGNORED.fullmatch(key):
            continue
        target = None
        if key.startswith(_BB):
            rest = _canonical_backbone(key[len(_BB):])
            m = re.fullmatch(r"encoder\.layers\.(\d+)\.blocks\.(\d+)\.attention\.([qkv])_proj\.(weight|bias)", rest)
            if m:
                qkv.setdefault(f"backbone.stages.{m[1]}.1.{m[2]}.attn.qkv.{m[4]}", {})[m[3]] = value
                continue
            m = re.fullmatch(r"hidden_states_norms\.stage(\d)\.(weight|bias)", rest)
            if m:
                target = f"backbone.norms.{int(m[1]) - 1}.{m[2]}"
            m = re.fullmatch(r"encoder\.layers\.(\d+)\.downsample\.(reduction|norm)\.(.*)", rest)
            if m:
                target = f"backbone.stages.{int(m[1]) + 1}.0.{m[2]}.{m[3]}"
            if rest == "layernorm.weight" or rest == "layernorm.bias":
                continue  # the classification norm after stage 4: unused by Mask2Former
            target = target or apply_rules(_SIMPLE, rest)
        elif key.startswith(_PD):
            target = apply_rules(_PIXEL, key[len(_PD):])
        elif key.startswith(_TM):
            rest = key[len(_TM):]
            m = re.fullmatch(r"decoder\.layers\.(\d+)\.cross_attn\.in_proj_(weight|bias)", rest)
            if m:
                split_in_proj(value, f"decoder.cross.{m[1]}.attn.", m[2], out)
                continue
            if rest.startswith("input_projections.") :
                raise CheckpointError(f"{key}: Mask2Former with feature_size != hidden_dim (a decoder "
                                      "input projection) is not supported")
            target = apply_rules(_TRANSFORMER, rest)
        elif key.startswith("class_predictor."):
            target = "decoder.classifier.fc." + key.split(".", 1)[1]
        if target is None:
            unknown.append(key)
            continue
        out[target] = value
    refuse_unknown(unknown, "transformers Mask2Former (Swin)")
    for target, parts in qkv.items():
        if set(parts) != {"q", "k", "v"}:
            raise CheckpointError(f"{target}: query/key/value incomplete in the checkpoint")
        out[target] = torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)
    return out
