"""``streamseg eval`` (run a model online over a dataset and score it) and ``streamseg eval-json``."""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import TYPE_CHECKING, Any

from streamseg.predictor.device import DEVICE_HELP, resolve_device
from streamseg.predictor.model_choice import MODEL_HELP, UNTRAINED_HELP, apply_model, check_trained, config_name

if TYPE_CHECKING:
    from streamseg.data.ytvis import YtvisDataset
    from streamseg.evaluation.results import TubeResult


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="run a model online over a YouTube-VIS-format dataset and print the YouTube-VIS AP",
        description="Runs the segmenter of --config frame by frame over every video of --data (each video "
        "a fresh stream), turns its tracks into result tubes and scores them with the YouTube-VIS metric. "
        "The vocabulary is the dataset's category names, embedded with the config's text encoder.",
    )
    p.add_argument("--config", default=None, metavar="NAME|FILE",
                   help="model config, a file or a shipped config's name (default: cpu-mobilenet, the shipped CPU model)")
    p.add_argument("--checkpoint", help="weights (default: the config's checkpoint; an imported "
                   "checkpoint brings its own config)")
    p.add_argument("--model", default=None, metavar="NAME", help=MODEL_HELP)
    p.add_argument("--untrained", action="store_true", help=UNTRAINED_HELP)
    p.add_argument("--data", required=True, metavar="DIR|JSON",
                   help="an annotation JSON, or a dataset folder holding valid.json; frames in JPEGImages/ beside it")
    p.add_argument("--results", metavar="OUT.json", help="also write the result tubes (benchmark format)")
    _add_run_options(p)
    p.add_argument("--breakdown", action="store_true", help="also say where the AP goes: frame recall of the masks (by object area), fragments and ID switches per object, and the AP with each object's fragments stitched into one tube")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.set_defaults(func=_eval)

    t = sub.add_parser(
        "eval-targets",
        help="semi-supervised VOS / point tracking: prompt every object on its first frame, report DAVIS J, F, J&F",
        description="For every object of every video of --data, add a target prompted on the object's first "
        "visible frame (--prompt mask: its mask; box: its box; point: its most interior pixel) and track it "
        "online to the end of the video. Prints DAVIS's J (region IoU), F (boundary F-measure, tolerance "
        "0.008 of the image diagonal) and J&F over the frames after the prompt frame, averaged over objects, "
        "with recall and decay over time. The dataset's classes run as the vocabulary beside the targets "
        "(--no-vocabulary: targets only).",
    )
    t.add_argument("--config", default=None, metavar="NAME|FILE",
                   help="model config, a file or a shipped config's name (default: cpu-mobilenet, the shipped CPU model)")
    t.add_argument("--checkpoint", help="weights (default: the config's checkpoint)")
    t.add_argument("--data", required=True, metavar="DIR|JSON", help="annotation JSON or folder holding valid.json")
    t.add_argument("--prompt", choices=("mask", "point", "box"), default="mask", help="prompt kind (default mask)")
    t.add_argument("--no-vocabulary", action="store_true", help="targets only (an empty vocabulary)")
    t.add_argument("--min-prompt-area", type=int, default=0, metavar="PX",
                   help="prompt each object on its first frame showing at least PX pixels of it (DAVIS-like: "
                   "in view, not the sliver of its entry); objects that never do are left out (default 0: "
                   "the first visible frame)")
    _add_run_options(t)
    t.add_argument("--json", action="store_true", help="the last line is one JSON object with J, F, J&F")
    t.set_defaults(func=_eval_targets)

    q = sub.add_parser(
        "eval-json",
        help="score a results file against a YouTube-VIS-format ground truth",
        description="Prints AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl of the official "
        "YouTube-VIS metric (tube IoU over whole videos).",
    )
    q.add_argument("gt", metavar="GT.json", help="ground-truth annotations (YouTube-VIS format)")
    q.add_argument("results", metavar="RESULTS.json", help="result tubes (video_id, category_id, score, segmentations)")
    q.add_argument("--breakdown", action="store_true", help="also say where the AP goes: frame recall of the masks (by object area), fragments and ID switches per object, and the AP with each object's fragments stitched into one tube")
    q.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    q.set_defaults(func=_eval_json)


def _eval_json(args: argparse.Namespace) -> int:
    from streamseg.data.ytvis import load_ytvis
    from streamseg.evaluation.results import read_results
    from streamseg.evaluation.ytvis import evaluate, format_stats

    gt = load_ytvis(args.gt)
    results = read_results(args.results, gt)
    stats = evaluate(gt, results).stats
    extra = _breakdown(gt, results) if args.breakdown else {}
    if args.json:
        print(json.dumps({"videos": len(gt.videos), "results": len(results), **stats, **extra}))
    else:
        print(f"{len(gt.videos)} videos, {len(gt.annotations)} ground-truth tubes, {len(results)} result tubes")
        print(format_stats(stats))
        _print_breakdown(extra)
    return 0


def _breakdown(gt: YtvisDataset, results: list[TubeResult]) -> dict[str, Any]:
    """The --breakdown figures, under their own key of the JSON line."""
    from streamseg.evaluation.breakdown import breakdown

    return {"breakdown": breakdown(gt, results)}


def _print_breakdown(extra: dict[str, Any]) -> None:
    from streamseg.evaluation.breakdown import format_breakdown

    if extra:
        print(format_breakdown(extra["breakdown"]))


def _eval(args: argparse.Namespace) -> int:
    from streamseg.config import load_config
    from streamseg.data.ytvis import image_root_for, load_ytvis, resolve_annotations
    from streamseg.errors import ConfigError
    from streamseg.evaluation.online import restrict, run_online
    from streamseg.evaluation.results import write_results
    from streamseg.evaluation.ytvis import evaluate, format_stats
    from streamseg.predictor.segmenter import build_segmenter
    from streamseg.vocab.files import build_vocabulary

    if args.max_videos is not None and args.max_videos < 1:
        raise ConfigError("--max-videos must be >= 1")
    from streamseg.predictor.checkpoint import self_contained_config
    from streamseg.weights_import.convert import CLOSED_SET_ENCODER, closed_set_subset

    apply_model(args)
    config = self_contained_config(args.checkpoint, args.set) if args.config is None else None
    config = config or load_config(config_name(args.config), args.set)
    check_trained(config, args.checkpoint, args.untrained, config_name(args.config))
    gt = load_ytvis(resolve_annotations(args.data))
    image_root = image_root_for(gt.path or resolve_annotations(args.data))
    names = [c.name for c in gt.categories]
    segmenter = build_segmenter(config, args.checkpoint, device=resolve_device(args.device))
    if segmenter.encoder_id == CLOSED_SET_ENCODER:  # an imported closed-set model: its own classes
        assert segmenter.vocabulary is not None
        vocabulary = closed_set_subset(segmenter.vocabulary, names)
    else:
        vc = config.vocabulary
        vocabulary = build_vocabulary(names, vc.encoder, vc.templates, use_cache=vc.cache)

    def progress(done: int, total: int) -> None:
        if not args.json:
            print(f"\rvideo {done}/{total}", end="" if done < total else "\n", file=sys.stderr, flush=True)

    run = run_online(segmenter, gt, image_root, vocabulary, args.max_videos, progress=progress)
    if args.results:
        write_results(args.results, run.results)
    scored = restrict(gt, run.videos)
    stats = evaluate(scored, run.results).stats
    extra = _breakdown(scored, run.results) if args.breakdown else {}
    timing = {"frames": run.frames, "ms_per_frame": run.ms_per_frame,
              "component_ms_per_frame": run.component_ms}
    if args.json:
        print(json.dumps({"videos": len(run.videos), "results": len(run.results), **stats, **timing, **extra}))
    else:
        print(f"{len(run.videos)} videos, {run.frames} frames, {len(run.results)} result tubes")
        print(format_stats(stats))
        _print_breakdown(extra)
        print(f"time per frame (segmenter.step, online): {run.ms_per_frame:.1f} ms")
        if run.component_ms:
            print("  " + ", ".join(f"{k} {v:.1f} ms" for k, v in sorted(run.component_ms.items())))
    return 0


def _add_run_options(p: argparse.ArgumentParser) -> None:
    """The options `eval` and `eval-targets` share: how many videos, where, which overrides."""
    p.add_argument("--max-videos", type=int, metavar="N", help="evaluate the first N videos only")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field")


def _eval_targets(args: argparse.Namespace) -> int:
    from streamseg.config import load_config
    from streamseg.data.ytvis import image_root_for, load_ytvis, resolve_annotations
    from streamseg.errors import ConfigError
    from streamseg.evaluation.targets import evaluate_targets
    from streamseg.predictor.segmenter import build_segmenter
    from streamseg.vocab.files import build_vocabulary

    if args.max_videos is not None and args.max_videos < 1:
        raise ConfigError("--max-videos must be >= 1")
    if args.min_prompt_area < 0:
        raise ConfigError("--min-prompt-area must be >= 0")
    config = load_config(config_name(args.config), args.set)
    gt = load_ytvis(resolve_annotations(args.data))
    # every object of a video is a target until its end: enough slots for the busiest video
    # (max_targets sizes the state only, no weights depend on it)
    needed = max((len(gt.annotations_of(v.id)) for v in gt.videos), default=1)
    if needed > config.model.max_targets:
        config = dataclasses.replace(config, model=dataclasses.replace(config.model, max_targets=needed))
    segmenter = build_segmenter(config, args.checkpoint, device=resolve_device(args.device))
    if args.no_vocabulary:
        vocabulary = segmenter.empty_vocabulary()
    else:
        vc = config.vocabulary
        vocabulary = build_vocabulary([c.name for c in gt.categories], vc.encoder, vc.templates, use_cache=vc.cache)

    def progress(done: int, total: int) -> None:
        if not args.json:
            print(f"\rvideo {done}/{total}", end="" if done < total else "\n", file=sys.stderr, flush=True)

    scores = evaluate_targets(segmenter, gt, image_root_for(gt.path or resolve_annotations(args.data)), args.prompt, vocabulary,
                              args.max_videos, progress=progress, min_prompt_area=args.min_prompt_area)
    summary = {"prompt": args.prompt, "min_prompt_area": args.min_prompt_area, **scores.summary()}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{summary['objects']} objects, {scores.frames} frames, prompt {args.prompt}")
        print(f"J {summary['J']:.3f}  F {summary['F']:.3f}  J&F {summary['J&F']:.3f}")
        if summary["objects"]:
            print(f"recall J {summary['J_recall']:.3f} F {summary['F_recall']:.3f}; decay J {summary['J_decay']:.3f} "
                  f"F {summary['F_decay']:.3f}; J&F by quarter of each track: "
                  + " ".join(f"{v:.3f}" for v in summary["J&F_by_quarter"]))
            print("J&F by prompt area (COCO ranges): " + ", ".join(
                f"{k} {v['J&F']:.3f} ({v['objects']} objects)" for k, v in summary["J&F_by_prompt_area"].items()))
            print(f"time per frame (segmenter.step, online): {summary['ms_per_frame']:.1f} ms")
    return 0
