"""Detectron2-format checkpoints written from random transformers / torchvision models.

The original -> transformers name pairs are those transformers' public conversion script
(``models/mask2former/convert_mask2former_original_pytorch_checkpoint_to_pytorch.py``:
replace_swin_backbone, replace_pixel_module, rename_keys_in_masked_attention_decoder,
replace_masked_attention_decoder, replace_transformer_module, replace_keys_qkv_transformer_decoder,
replace_universal_segmentation_module) builds; the script imports detectron2 at module level, so
its tables are restated here and used in reverse (transformers -> original). The ResNet names are
detectron2's (stem.conv1 + its FrozenBN ``norm``, res2..res5 bottlenecks with ``shortcut``).
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

# transformers v5 renamed Swin's attention and MLP in memory; the script uses the older names
_SWIN_V5_TO_SCRIPT = [
    ("attention.relative_position_bias.relative_position_bias_table", "attention.self.relative_position_bias_table"),
    ("attention.q_proj", "attention.self.query"), ("attention.k_proj", "attention.self.key"),
    ("attention.v_proj", "attention.self.value"), ("attention.o_proj", "attention.output.dense"),
    ("mlp.fc1", "intermediate.dense"), ("mlp.fc2", "output.dense")]


def _wb(src: str, dst: str) -> list[tuple[str, str]]:
    return [(f"{src}.weight", f"{dst}.weight"), (f"{src}.bias", f"{dst}.bias")]


def swin_pairs(depths: list[int]) -> tuple[list[tuple[str, str]], list[tuple[str, list[str]]]]:
    """replace_swin_backbone: renamed pairs, and each fused qkv with its (query, key, value) parts."""
    s, d = "backbone", "pixel_level_module.encoder"
    pairs = _wb(f"{s}.patch_embed.proj", f"{d}.embeddings.patch_embeddings.projection")
    pairs += _wb(f"{s}.patch_embed.norm", f"{d}.embeddings.norm")
    fused: list[tuple[str, list[str]]] = []
    for i, depth in enumerate(depths):
        for j in range(depth):
            sb, db = f"{s}.layers.{i}.blocks.{j}", f"{d}.encoder.layers.{i}.blocks.{j}"
            pairs += _wb(f"{sb}.norm1", f"{db}.layernorm_before")
            pairs.append((f"{sb}.attn.relative_position_bias_table",
                          f"{db}.attention.self.relative_position_bias_table"))
            for p in ("weight", "bias"):
                fused.append((f"{sb}.attn.qkv.{p}", [f"{db}.attention.self.{n}.{p}" for n in ("query", "key", "value")]))
            pairs += _wb(f"{sb}.attn.proj", f"{db}.attention.output.dense")
            pairs += _wb(f"{sb}.norm2", f"{db}.layernorm_after")
            pairs += _wb(f"{sb}.mlp.fc1", f"{db}.intermediate.dense")
            pairs += _wb(f"{sb}.mlp.fc2", f"{db}.output.dense")
        if i < 3:
            pairs.append((f"{s}.layers.{i}.downsample.reduction.weight", f"{d}.encoder.layers.{i}.downsample.reduction.weight"))
            pairs += _wb(f"{s}.layers.{i}.downsample.norm", f"{d}.encoder.layers.{i}.downsample.norm")
        pairs += _wb(f"{s}.norm{i}", f"{d}.hidden_states_norms.stage{i + 1}")
    return _in_model(pairs, fused)


def head_pairs(enc_layers: int, dec_layers: int) -> tuple[list[tuple[str, str]], list[tuple[str, list[str]]]]:
    """replace_pixel_module (without the backbone) + the transformer module + the class predictor."""
    s, d = "sem_seg_head.pixel_decoder", "pixel_level_module.decoder"
    pairs = [(f"{s}.adapter_1.weight", f"{d}.adapter_1.0.weight")] + _wb(f"{s}.adapter_1.norm", f"{d}.adapter_1.1")
    pairs += [(f"{s}.layer_1.weight", f"{d}.layer_1.0.weight")] + _wb(f"{s}.layer_1.norm", f"{d}.layer_1.1")
    for i in range(3):
        for j in range(2):
            pairs += _wb(f"{s}.input_proj.{i}.{j}", f"{d}.input_projections.{i}.{j}")
    pairs.append((f"{s}.transformer.level_embed", f"{d}.level_embed"))
    for i in range(enc_layers):
        se, de = f"{s}.transformer.encoder.layers.{i}", f"{d}.encoder.layers.{i}"
        pairs += _wb(f"{se}.linear1", f"{de}.fc1") + _wb(f"{se}.linear2", f"{de}.fc2")
        pairs += _wb(f"{se}.norm1", f"{de}.self_attn_layer_norm") + _wb(f"{se}.norm2", f"{de}.final_layer_norm")
        for name in ("attention_weights", "output_proj", "sampling_offsets", "value_proj"):
            pairs += _wb(f"{se}.self_attn.{name}", f"{de}.self_attn.{name}")
    pairs += _wb(f"{s}.mask_features", f"{d}.mask_projection")
    s, d = "sem_seg_head.predictor", "transformer_module.decoder"
    fused: list[tuple[str, list[str]]] = []
    for i in range(dec_layers - 1):
        sa, ca, ff = (f"{s}.transformer_self_attention_layers.{i}", f"{s}.transformer_cross_attention_layers.{i}",
                      f"{s}.transformer_ffn_layers.{i}")
        pairs += _wb(f"{sa}.self_attn.out_proj", f"{d}.layers.{i}.self_attn.out_proj")
        pairs += _wb(f"{sa}.norm", f"{d}.layers.{i}.self_attn_layer_norm")
        pairs += [(f"{ca}.multihead_attn.in_proj_weight", f"{d}.layers.{i}.cross_attn.in_proj_weight"),
                  (f"{ca}.multihead_attn.in_proj_bias", f"{d}.layers.{i}.cross_attn.in_proj_bias")]
        pairs += _wb(f"{ca}.multihead_attn.out_proj", f"{d}.layers.{i}.cross_attn.out_proj")
        pairs += _wb(f"{ca}.norm", f"{d}.layers.{i}.cross_attn_layer_norm")
        pairs += _wb(f"{ff}.linear1", f"{d}.layers.{i}.fc1") + _wb(f"{ff}.linear2", f"{d}.layers.{i}.fc2")
        pairs += _wb(f"{ff}.norm", f"{d}.layers.{i}.final_layer_norm")
        for p in ("weight", "bias"):  # replace_keys_qkv_transformer_decoder: in_proj = q | k | v
            fused.append((f"{sa}.self_attn.in_proj_{p}", [f"{d}.layers.{i}.self_attn.{n}_proj.{p}" for n in "qkv"]))
    pairs += _wb(f"{s}.decoder_norm", f"{d}.layernorm")
    for i in range(3):
        pairs += _wb(f"{s}.mask_embed.layers.{i}", f"{d}.mask_predictor.mask_embedder.{i}.0")
    pairs += [(f"{s}.query_embed.weight", "transformer_module.queries_embedder.weight"),
              (f"{s}.query_feat.weight", "transformer_module.queries_features.weight"),
              (f"{s}.level_embed.weight", "transformer_module.level_embed.weight")]
    return _in_model(pairs, fused)


def _in_model(pairs: list[tuple[str, str]], fused: list[tuple[str, list[str]]]):
    """The script converts Mask2FormerModel; Mask2FormerForUniversalSegmentation holds it as ``model``."""
    return [(o, f"model.{t}") for o, t in pairs], [(o, [f"model.{t}" for t in ts]) for o, ts in fused]


def _script_names(hf_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in hf_state.items():
        if key.startswith("model.pixel_level_module.encoder."):
            key = key.replace("model.pixel_level_module.encoder.swin.", "model.pixel_level_module.encoder.")
            for new, old in _SWIN_V5_TO_SCRIPT:
                key = key.replace(new, old)
        out[key] = value.detach()
    return out


def relative_position_index(window: int) -> np.ndarray:
    """The original Swin's (window^2, window^2) buffer (the importer ignores it; real files have it)."""
    coords = np.stack(np.meshgrid(np.arange(window), np.arange(window), indexing="ij")).reshape(2, -1)
    rel = (coords[:, :, None] - coords[:, None, :]).transpose(1, 2, 0) + (window - 1)
    return (rel[..., 0] * (2 * window - 1) + rel[..., 1]).astype(np.int64)


def _convert(hf_state: dict[str, torch.Tensor], pairs: list[tuple[str, str]],
             fused: list[tuple[str, list[str]]]) -> dict[str, np.ndarray]:
    src = _script_names(hf_state)
    out = {o: src.pop(t).numpy().copy() for o, t in pairs}
    for o, parts in fused:
        out[o] = torch.cat([src.pop(t) for t in parts], dim=0).numpy().copy()
    out["sem_seg_head.predictor.class_embed.weight"] = src.pop("class_predictor.weight").numpy().copy()
    out["sem_seg_head.predictor.class_embed.bias"] = src.pop("class_predictor.bias").numpy().copy()
    out["criterion.empty_weight"] = src.pop("criterion.empty_weight").numpy().copy()
    return out, src  # type: ignore[return-value]


def d2_from_hf_swin(model) -> dict[str, np.ndarray]:
    """An original D2SwinTransformer Mask2Former state dict holding ``model``'s weights."""
    cfg = model.config
    depths, window = list(cfg.backbone_config.depths), cfg.backbone_config.window_size
    pairs, fused = swin_pairs(depths)
    hp, hf = head_pairs(cfg.encoder_layers, cfg.decoder_layers)
    out, rest = _convert(model.state_dict(), pairs + hp, fused + hf)
    rest.pop("model.pixel_level_module.encoder.layernorm.weight")  # transformers' classification norm:
    rest.pop("model.pixel_level_module.encoder.layernorm.bias")  # D2SwinTransformer has none
    assert not rest, f"transformers tensors without an original name: {sorted(rest)[:5]}"
    for i, depth in enumerate(depths):
        for j in range(depth):
            out[f"backbone.layers.{i}.blocks.{j}.attn.relative_position_index"] = relative_position_index(window)
    return out


def d2_resnet_from_torchvision(tv_state: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """torchvision ResNet-50 weights under detectron2's names (FrozenBN: the four tensors)."""
    out = {}
    for key, value in tv_state.items():
        parts = key.split(".")
        if parts[0] == "fc" or parts[-1] == "num_batches_tracked":
            continue
        if parts[0] == "conv1":
            name = "stem.conv1.weight"
        elif parts[0] == "bn1":
            name = f"stem.conv1.norm.{parts[1]}"
        else:  # layer{L}.{j}.(convK|bnK|downsample.{0,1}).param
            stage, block, mod = int(parts[0][5:]) + 1, parts[1], parts[2]
            if mod.startswith("conv"):
                name = f"res{stage}.{block}.{mod}.weight"
            elif mod.startswith("bn"):
                name = f"res{stage}.{block}.conv{mod[2:]}.norm.{parts[3]}"
            else:
                name = f"res{stage}.{block}.shortcut." + ("weight" if parts[3] == "0" else f"norm.{parts[4]}")
        out[f"backbone.{name}"] = value.detach().numpy().copy()
    return out


def torchvision_from_hf_resnet(hf_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """transformers' ResNetBackbone (embedder + stages of bottleneck ``layer.0..2`` + shortcut)
    as torchvision ResNet-50 names."""
    pre = "model.pixel_level_module.encoder."
    out = {}
    for key, value in hf_state.items():
        if not key.startswith(pre) or key.endswith("num_batches_tracked"):
            continue
        k = key[len(pre):]
        kind = "conv" if ".convolution." in k else "bn"
        param = k.rsplit(".", 1)[1]
        if k.startswith("embedder.embedder."):
            name = "conv1" if kind == "conv" else "bn1"
        else:
            p = k.split(".")  # encoder.stages.S.layers.J.(layer.K|shortcut).(convolution|normalization).param
            prefix = f"layer{int(p[2]) + 1}.{p[4]}"
            if p[5] == "shortcut":
                name = f"{prefix}.downsample.{0 if kind == 'conv' else 1}"
            else:
                name = f"{prefix}.{kind}{int(p[6]) + 1}"
        out[f"{name}.{param}"] = value.detach()
    return out


def write_pkl(state: dict[str, np.ndarray], path: Path, protocol: int = 4) -> Path:
    """As detectron2's model zoo ships them: {"model": {name: ndarray}, "__author__": ...}."""
    path.write_bytes(pickle.dumps({"model": state, "__author__": "test", "matching_heuristics": True},
                                  protocol=protocol))
    return path


def write_pth(state: dict[str, np.ndarray], path: Path) -> Path:
    """As detectron2's Checkpointer saves: {"model": state_dict, "iteration": n}."""
    torch.save({"model": {k: torch.from_numpy(v) for k, v in state.items()}, "iteration": 7}, path)
    return path
