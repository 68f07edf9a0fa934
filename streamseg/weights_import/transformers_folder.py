"""A transformers Mask2Former folder (config.json + model.safetensors | pytorch_model.bin) ->
ModelConfig, class names and a state dict, read without running code from the files."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from streamseg.errors import CheckpointError
from streamseg.model.config import ModelConfig


def read_folder(folder: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        raise CheckpointError(f"{folder}: no config.json (a transformers Mask2Former folder needs one)")
    try:
        config = json.loads(cfg_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{cfg_path} is not valid JSON ({exc})") from None
    return config, _read_weights(folder)


def _read_weights(folder: Path) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}
    files: list[Path]
    if (folder / "model.safetensors").is_file():
        files = [folder / "model.safetensors"]
    elif (folder / "model.safetensors.index.json").is_file():
        index = json.loads((folder / "model.safetensors.index.json").read_text())
        files = [folder / f for f in sorted(set(index["weight_map"].values()))]
    elif (folder / "pytorch_model.bin").is_file():
        files = [folder / "pytorch_model.bin"]
    else:
        raise CheckpointError(f"{folder}: neither model.safetensors nor pytorch_model.bin")
    for f in files:
        try:
            if f.suffix == ".safetensors":
                from safetensors.torch import load_file

                state.update(load_file(str(f)))
            else:
                data = torch.load(f, map_location="cpu", weights_only=True)
                if not isinstance(data, dict):
                    raise CheckpointError(f"{f}: not a state dict")
                state.update(data)
        except CheckpointError:
            raise
        except Exception as exc:
            raise CheckpointError(f"{f} is unreadable ({type(exc).__name__}: "
                                  f"{str(exc).splitlines()[0][:120] if str(exc) else ''})") from None
    return state


def _require(ok: bool, what: str) -> None:
    if not ok:
        raise CheckpointError(f"unsupported Mask2Former config: {what}")


def model_config(config: dict[str, Any], **overrides: Any) -> tuple[ModelConfig, list[str]]:
    """transformers' Mask2FormerConfig (as JSON) -> the equivalent ModelConfig and class names."""
    if config.get("model_type") != "mask2former":
        raise CheckpointError(f"config.json describes model_type {config.get('model_type')!r}, "
                              "not 'mask2former'")
    bb = config.get("backbone_config") or {}
    _require(bb.get("model_type") == "swin", f"backbone {bb.get('model_type')!r} (Swin only)")
    _require(bb.get("patch_size", 4) == 4, "Swin patch_size != 4")
    _require(float(bb.get("mlp_ratio", 4.0)) == 4.0, "Swin mlp_ratio != 4")
    _require(not bb.get("use_absolute_embeddings", False), "Swin absolute position embeddings")
    _require(bb.get("hidden_act", "gelu") == "gelu", "Swin activation other than gelu")
    _require(config.get("feature_size", 256) == config.get("hidden_dim", 256)
             and not config.get("enforce_input_projection", False), "feature_size != hidden_dim")
    _require(not config.get("pre_norm", False), "pre_norm decoder")
    _require(config.get("common_stride", 4) == 4, "common_stride != 4")
    id2label = config.get("id2label") or {}
    names = [str(id2label[k]) for k in sorted(id2label, key=lambda k: int(k))]
    _require(bool(names), "id2label is empty")
    heads = int(config.get("num_attention_heads", 8))
    cfg = ModelConfig(
        backbone="swin", pretrained=False,
        swin_embed_dim=int(bb.get("embed_dim", 96)), swin_depths=list(bb.get("depths", [2, 2, 6, 2])),
        swin_heads=list(bb.get("num_heads", [3, 6, 12, 24])), swin_window=int(bb.get("window_size", 7)),
        pixel_decoder="deformable", enc_layers=int(config.get("encoder_layers", 6)), enc_heads=heads,
        enc_points=4, enc_ffn_dim=int(config.get("encoder_feedforward_dim", 1024)),
        hidden_dim=int(config.get("hidden_dim", 256)), mask_dim=int(config.get("mask_feature_size", 256)),
        num_queries=int(config.get("num_queries", 100)), dec_layers=int(config.get("decoder_layers", 10)) - 1,
        nheads=heads, ffn_dim=int(config.get("dim_feedforward", 2048)), masked_levels=3,
        text_dim=len(names), classifier="linear", layout="mask2former", taxonomy=False,
        input_short_side=overrides.pop("input_short_side", 480),
        input_max_long_side=overrides.pop("input_max_long_side", 1333), **overrides)
    cfg.validate()
    return cfg, names
