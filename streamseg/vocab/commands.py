"""``streamseg vocab build|show``: make the vocabulary files an engine loads without a text encoder."""
from __future__ import annotations

import argparse

from streamseg.model.config import DEFAULT_TEMPLATES

# Same default as VocabularyConfig.templates.


def add_parsers(sub: argparse._SubParsersAction) -> None:
    vocab = sub.add_parser("vocab", help="build or inspect vocabulary files (class names + text embeddings)")
    which = vocab.add_subparsers(dest="vocab_command", metavar="ACTION", required=True)

    p = which.add_parser("build", help="embed class names with a text encoder and write a vocabulary file")
    p.add_argument("--encoder", default="minilm",
                   help="'minilm' (packaged, offline) or 'clip:MODEL[:PRETRAINED]' through open_clip, e.g. "
                        "clip:ViT-B-32:laion2b_s34b_b79k, clip:ViT-B-32 (random weights), "
                        "clip:local-dir:/path (open_clip config + weights in a folder); default: minilm")
    p.add_argument("--names", required=True, help="comma-separated class names, e.g. person,car,dog")
    p.add_argument("--templates", nargs="+", default=list(DEFAULT_TEMPLATES), metavar="TEMPLATE",
                   help="prompt templates with '{}' for the name; a class embedding is the normalised mean "
                        f"over them (default: {' | '.join(DEFAULT_TEMPLATES)})")
    p.add_argument("--no-cache", action="store_true", help="do not read or write ~/.cache/streamseg/vocab")
    p.add_argument("-o", "--output", required=True, help="vocabulary file to write (.pt)")
    p.set_defaults(func=_build)

    p = which.add_parser("show", help="print a vocabulary file's encoder, dimension and names")
    p.add_argument("file")
    p.set_defaults(func=_show)


def _build(args: argparse.Namespace) -> int:
    from streamseg.vocab.files import build_vocabulary, save_vocabulary

    names = [n.strip() for n in args.names.split(",") if n.strip()]
    vocab = build_vocabulary(names, args.encoder, args.templates, use_cache=not args.no_cache)
    save_vocabulary(args.output, vocab, args.templates)
    dim = vocab.embeddings.shape[1] if vocab.embeddings is not None else 0
    print(f"wrote {args.output}: {len(vocab.names)} names, dim {dim}, "
          f"encoder {vocab.encoder_id}, vocab id {vocab.vocab_id}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from streamseg.vocab.files import load_vocabulary

    vocab = load_vocabulary(args.file)
    dim = vocab.embeddings.shape[1] if vocab.embeddings is not None else 0
    print(f"encoder {vocab.encoder_id}, dim {dim}, vocab id {vocab.vocab_id}")
    print(",".join(vocab.names))
    return 0
