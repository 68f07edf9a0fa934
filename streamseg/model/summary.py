"""Parameter counts per top-level part of OnlineVIS (for benchmarks and the design note)."""
from __future__ import annotations

from torch import nn


def parameter_counts(model: nn.Module) -> dict[str, int]:
    """Parameters per part: each top-level child, with the decoder's TIM blocks and open-vocabulary
    classifier split out (they are what TMT-VIS and open vocabulary add to Mask2Former), and
    "total". Frozen BatchNorm statistics are buffers and not counted (as in the papers' figures)."""
    counts: dict[str, int] = {}
    for name, param in model.named_parameters():
        parts = name.split(".")
        key = parts[0]
        if key == "decoder" and parts[1] in ("tim", "classifier"):
            key = f"decoder.{parts[1]}"
        counts[key] = counts.get(key, 0) + param.numel()
    counts["total"] = sum(counts.values())
    return counts


def main() -> None:
    """``python -m streamseg.model.summary CONFIG...``: print the counts of each config's model."""
    import sys

    from streamseg.config import load_config
    from streamseg.model.online import OnlineVIS

    for path in sys.argv[1:]:
        cfg = load_config(path, ["model.pretrained=false"]).model
        print(path)
        for key, n in parameter_counts(OnlineVIS(cfg)).items():
            print(f"  {key:20s} {n / 1e6:8.3f} M")


if __name__ == "__main__":
    main()
