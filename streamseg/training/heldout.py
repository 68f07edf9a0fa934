"""Held-out AP during training: the model as it is at a step, run online over a few videos of a
dataset it does not train on, scored with the YouTube-VIS metric (the same path as ``streamseg
eval``, tracker included), so the run's log and ap.png show accuracy against steps and minutes,
not only losses."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from streamseg.data.ytvis import YtvisDataset, image_root_for, load_ytvis, resolve_annotations

EVAL_KEYS = ("AP", "AP50", "AP75", "AR1", "AR10")


class HeldOutEval:
    """Loads the held-out annotations and embeds their class names once; ``__call__`` scores a
    model. Costs ``videos`` × frames of inference per call; the training step waits meanwhile."""

    def __init__(self, data: str | Path, config: Any, videos: int) -> None:
        from streamseg.vocab.encoders import encoder_id_for_spec
        from streamseg.vocab.files import build_vocabulary

        path = resolve_annotations(data)
        gt = load_ytvis(path)
        self.gt: YtvisDataset = gt
        self.image_root = image_root_for(gt.path or path)
        self.config = config
        self.videos = videos
        vc = config.vocabulary
        self.vocabulary = build_vocabulary([c.name for c in gt.categories], vc.encoder, vc.templates,
                                           use_cache=vc.cache)
        self.encoder_id = encoder_id_for_spec(vc.encoder)

    def __call__(self, model: Any, device: Any) -> dict[str, float]:
        from streamseg.evaluation.online import restrict, run_online
        from streamseg.evaluation.ytvis import evaluate
        from streamseg.predictor.segmenter import OnlineSegmenter

        was_training = model.training
        model.eval()
        t0 = time.perf_counter()
        try:
            segmenter = OnlineSegmenter(model, self.config, self.encoder_id, self.vocabulary, device)
            run = run_online(segmenter, self.gt, self.image_root, self.vocabulary, self.videos)
            stats = evaluate(restrict(self.gt, run.videos), run.results).stats
        finally:
            model.train(was_training)
        out = {k: round(float(stats[k]), 4) for k in EVAL_KEYS}
        out["eval_videos"] = len(run.videos)
        out["eval_s"] = round(time.perf_counter() - t0, 1)
        return out
