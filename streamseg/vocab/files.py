"""Vocabulary files: class names + their text embeddings + the id of the encoder that made them.

A deployed engine loads such a file and needs no text encoder at run time. Files are plain tensor
dicts (``torch.save``; read back with ``weights_only=True``, so loading one cannot run code).
Embeddings computed from names are cached under $STREAMSEG_CACHE/vocab (~/.cache/streamseg), keyed by encoder,
templates and names, because building a text encoder costs seconds and the result never changes.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from streamseg.cache import cache_root
from streamseg.errors import ConfigError
from streamseg.interface import Vocabulary
from streamseg.model.config import VocabularyConfig
from streamseg.torch_files import save_atomic

VOCAB_FORMAT = "streamseg-vocabulary"
VOCAB_VERSION = 1


def default_cache_dir() -> Path:
    return cache_root() / "vocab"


def vocabulary_to_dict(vocab: Vocabulary, templates: Sequence[str] | None = None) -> dict[str, Any]:
    import torch

    if vocab.embeddings is None:
        raise ConfigError("a vocabulary without embeddings cannot be saved")
    return {
        "format": VOCAB_FORMAT,
        "version": VOCAB_VERSION,
        "names": list(vocab.names),
        "embeddings": torch.from_numpy(np.ascontiguousarray(vocab.embeddings, dtype=np.float32)),
        "encoder_id": vocab.encoder_id,
        "templates": list(templates or []),
    }


def vocabulary_from_dict(data: Any, where: str) -> Vocabulary:
    """Check a vocabulary dict (from a file or a checkpoint) and build the Vocabulary; ConfigError if bad."""
    import torch

    if not isinstance(data, dict) or data.get("format") != VOCAB_FORMAT:
        raise ConfigError(f"{where} is not a streamseg vocabulary (format field missing or wrong)")
    if data.get("version") != VOCAB_VERSION:
        raise ConfigError(f"{where} has vocabulary version {data.get('version')!r}; this streamseg reads "
                          f"version {VOCAB_VERSION}")
    names, emb, encoder_id = data.get("names"), data.get("embeddings"), data.get("encoder_id")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        raise ConfigError(f"{where}: names must be a non-empty list of strings")
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}: names must be unique")
    if not isinstance(encoder_id, str) or not encoder_id:
        raise ConfigError(f"{where}: encoder_id must be a non-empty string")
    if not isinstance(emb, torch.Tensor) or emb.ndim != 2 or emb.shape[0] != len(names) \
            or not emb.is_floating_point():
        raise ConfigError(f"{where}: embeddings must be a float tensor of shape [{len(names)}, D]")
    arr = emb.detach().float().cpu().numpy()
    if not np.isfinite(arr).all():
        raise ConfigError(f"{where}: embeddings contain NaN or inf")
    arr = arr / np.maximum(np.linalg.norm(arr, axis=1, keepdims=True), 1e-12)
    return Vocabulary(names=list(names), embeddings=arr.astype(np.float32), encoder_id=encoder_id)


def save_vocabulary(path: str | Path, vocab: Vocabulary, templates: Sequence[str] | None = None) -> None:
    """Write atomically (temp file + rename) so a reader never sees half a file."""
    save_atomic(vocabulary_to_dict(vocab, templates), path)


def load_vocabulary(path: str | Path) -> Vocabulary:
    import torch

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"vocabulary file not found: {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt or foreign file
        raise ConfigError(f"vocabulary file {path} is unreadable ({type(exc).__name__})") from None
    return vocabulary_from_dict(data, f"vocabulary file {path}")


def cache_key(encoder_id: str, templates: Sequence[str], names: Sequence[str]) -> str:
    text = "\n".join([encoder_id, "\t".join(templates), *names])
    return hashlib.sha1(text.encode()).hexdigest()[:20]


def build_vocabulary(names: Sequence[str], encoder_spec: str, templates: Sequence[str],
                     cache_dir: Path | None = None, use_cache: bool = True) -> Vocabulary:
    """Embed ``names`` with the encoder ``encoder_spec`` names, through the on-disk cache."""
    from streamseg.vocab.encoders import encode_names, encoder_id_for_spec, make_encoder

    names = [n.strip() for n in names]
    if not names or not all(names):
        raise ConfigError("vocabulary names must be a non-empty list of non-empty strings")
    if len(set(names)) != len(names):
        raise ConfigError("vocabulary names must be unique")
    if not templates or any("{}" not in t for t in templates):
        raise ConfigError("prompt templates must be non-empty and each contain '{}'")
    encoder_id = encoder_id_for_spec(encoder_spec)
    cache_file = (cache_dir or default_cache_dir()) / f"{cache_key(encoder_id, templates, names)}.pt"
    if use_cache and cache_file.is_file():
        try:
            cached = load_vocabulary(cache_file)
            if cached.names == names and cached.encoder_id == encoder_id:
                return cached
        except ConfigError:
            pass  # a damaged cache entry is rebuilt below
    encoder = make_encoder(encoder_spec)
    vocab = Vocabulary(names=names, embeddings=encode_names(encoder, names, templates),
                       encoder_id=encoder.encoder_id)
    if use_cache:
        try:
            save_vocabulary(cache_file, vocab, templates)
        except OSError:
            pass  # a read-only home only loses the cache
    return vocab


def resolve_vocabulary(cfg: VocabularyConfig, base_dir: str | Path | None = None,
                       cache_dir: Path | None = None) -> Vocabulary | None:
    """The vocabulary a config asks for: its file (relative to the config's folder), else its names
    embedded with its encoder; None when the config names neither."""
    if cfg.file:
        path = Path(cfg.file)
        if not path.is_absolute() and base_dir is not None:
            path = Path(base_dir) / path
        return load_vocabulary(path)
    if cfg.names:
        return build_vocabulary(cfg.names, cfg.encoder, cfg.templates, cache_dir=cache_dir, use_cache=cfg.cache)
    return None


def check_vocabulary(vocab: Vocabulary, encoder_id: str, text_dim: int) -> None:
    """A model reads embeddings only from the encoder it was trained with: refuse any other."""
    if vocab.embeddings is None:
        raise ConfigError(f"vocabulary {vocab.vocab_id} has no text embeddings; the model needs them")
    if vocab.encoder_id != encoder_id:
        raise ConfigError(f"vocabulary was built with text encoder '{vocab.encoder_id}' but the model expects "
                          f"'{encoder_id}' (rebuild it with `streamseg vocab build --encoder ...`)")
    if vocab.embeddings.ndim != 2 or vocab.embeddings.shape[1] != text_dim:
        raise ConfigError(f"vocabulary embeddings have dim {vocab.embeddings.shape[-1]} but the model's "
                          f"text_dim is {text_dim}")
