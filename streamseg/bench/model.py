"""``streamseg bench model``: the whole segmenter's speed and memory on synthetic frames.

Prints frames/s and per-component milliseconds (medians) at each source size, peak memory, and
(with --soak N) the process RSS after 1,000 and after N frames, to show that the per-stream state
keeps memory flat on an endless stream. Figures only: nothing here asserts a speed.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import statistics
import sys
import time
import tracemalloc
from typing import Any

COMPONENTS = ("preprocess", "backbone", "pixel_decoder", "tcm", "decoder", "tracker", "postprocess")
_PRERENDER = 30  # distinct frames per size (rendering is not what is measured)
TARGET_ROUNDS = 5  # interleaved rounds of --targets (each count's cost is paired within a round)
TARGET_FRAMES_PER_ROUND = 40  # frames per count and round, at least
_WARMUP = 3


def main(args: argparse.Namespace) -> int:
    import torch

    from streamseg.config import load_config
    from streamseg.data.synthetic_scene import SYNTHETIC_CLASSES
    from streamseg.errors import ConfigError
    from streamseg.predictor.segmenter import build_segmenter
    from streamseg.vocab.files import build_vocabulary

    sizes = _parse_sizes(args.sizes)
    if args.frames < 1:
        raise ConfigError("--frames must be >= 1")
    if args.soak < 0:
        raise ConfigError("--soak must be >= 0")
    from streamseg.predictor.device import resolve_device

    device = str(resolve_device(getattr(args, "device", None)))
    overrides = [f"model.threads={args.threads}"] if args.threads is not None else []
    overrides += list(getattr(args, "set", None) or [])
    from streamseg.predictor.checkpoint import self_contained_config
    from streamseg.predictor.model_choice import apply_model, check_trained, config_name

    apply_model(args)
    checkpoint = getattr(args, "checkpoint", None)

    cfg = self_contained_config(checkpoint, overrides) or load_config(config_name(args.config), overrides)
    check_trained(cfg, checkpoint, bool(getattr(args, "untrained", False)), config_name(args.config))
    t0 = time.perf_counter()
    seg = build_segmenter(cfg, checkpoint, device=device)
    vocab = seg.vocabulary or build_vocabulary(list(SYNTHETIC_CLASSES), cfg.vocabulary.encoder,
                                               cfg.vocabulary.templates)
    build_s = time.perf_counter() - t0
    report: dict[str, Any] = {
        "config": checkpoint or config_name(args.config), "device": device, "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(), "loadavg_1m_at_start": round(os.getloadavg()[0], 2),
        "build_s": round(build_s, 2), "vocabulary": {"names": len(vocab.names), "encoder": vocab.encoder_id},
        "params_m": _params(seg.model), "sizes": {},
    }
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for width, height in sizes:
        report["sizes"][f"{width}x{height}"] = _measure(seg, vocab, width, height, args.frames)
    if getattr(args, "targets", None):
        report["targets"] = _measure_targets(seg, vocab, sizes[0], _parse_counts(args.targets), args.frames)
    if getattr(args, "speedups", None):
        report["speedups"] = _compare_speedups(cfg, checkpoint, device, vocab, sizes[0], args.speedups, args.frames)
    report["memory"] = _memory(seg, vocab, sizes[0], device)
    if args.soak:
        report["soak"] = _soak(seg, vocab, sizes[0], args.soak)
    report["loadavg_1m_at_end"] = round(os.getloadavg()[0], 2)
    if args.json:
        print(json.dumps(report))
    else:
        _print(report)
    return 0


def _parse_sizes(text: str) -> list[tuple[int, int]]:
    from streamseg.errors import ConfigError

    sizes = []
    for item in text.split(","):
        try:
            w, h = (int(v) for v in item.lower().split("x"))
        except ValueError:
            raise ConfigError(f"--sizes: '{item}' is not WIDTHxHEIGHT") from None
        if w < 16 or h < 16:
            raise ConfigError(f"--sizes: '{item}' is too small")
        sizes.append((w, h))
    return sizes


def _frames(width: int, height: int, count: int) -> list:
    from streamseg.data.synthetic_scene import SceneConfig, SyntheticScene
    from streamseg.interface import Frame

    scene = SyntheticScene(SceneConfig(seed=1, width=width, height=height))
    return [Frame(image=scene.render(i)[0], index=i, pts=None, t_capture_ns=0) for i in range(count)]


def _parse_counts(text: str) -> list[int]:
    from streamseg.errors import ConfigError

    try:
        counts = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"--targets must be comma-separated integers, got {text!r}") from None
    if not counts or any(c < 0 for c in counts):
        raise ConfigError(f"--targets must be integers >= 0, got {text!r}")
    return counts


def _measure_targets(seg, vocab, size: tuple[int, int], counts: list[int], n: int,
                     rounds: int = TARGET_ROUNDS) -> dict[str, Any]:
    """Frame rate with N targets beside the vocabulary: one stream per count, stepped in
    interleaved rounds (so a load change on a shared machine hits every count alike), at least
    TARGET_FRAMES_PER_ROUND frames per count per round: a few percent of cost is lost in the noise
    of short rounds. The cost of each count is paired round by round with the first count and
    given as the median of those rounds with its range, so a noisy run shows as a wide range."""
    width, height = size
    n = max(n, rounds * TARGET_FRAMES_PER_ROUND)
    frames = _frames(width, height, min(n, _PRERENDER))
    seg.targets_trained = True  # a speed figure: untrained target weights cost the same
    states: dict[int, Any] = {}
    for c in counts:
        state = seg.init_state(vocab)
        for k in range(c):  # boxes spread over the frame (the prompt kind does not change the cost)
            x0 = (k % 4) * width / 4
            seg.add_target(state, box=(x0, height / 4, x0 + width / 5, height / 2), name=f"t{k}")
        for i in range(_WARMUP):
            seg.step(state, frames[i % len(frames)])
        states[c] = state
    per, _ = _interleaved({c: (seg, states[c]) for c in counts}, frames, n, rounds)
    per_round = len(per[counts[0]]) // rounds  # _interleaved steps each count alike, round after round
    round_median = {c: [statistics.median(per[c][r * per_round:(r + 1) * per_round]) for r in range(rounds)]
                    for c in counts}
    out = {}
    base = counts[0]
    for c in counts:
        med = statistics.median(per[c])
        entry: dict[str, Any] = {"frames": len(per[c]), "ms_median": round(med * 1e3, 2),
                                 "fps_median": round(1.0 / med, 2), "fps_mean": round(len(per[c]) / sum(per[c]), 2)}
        if c != base:  # fps cost against the first count, paired within each round
            costs = [100.0 * (1.0 - b / t) for t, b in zip(round_median[c], round_median[base])]
            entry["fps_cost_pct_by_round"] = [round(x, 2) for x in costs]
            entry["fps_cost_pct_median"] = round(statistics.median(costs), 2)
        out[str(c)] = entry
    return {"size": f"{width}x{height}", "rounds": rounds, "base": base, "counts": out}


def _interleaved(runs: dict[Any, tuple[Any, Any]], frames: list, n: int,
                 rounds: int) -> tuple[dict[Any, list[float]], dict[Any, list[Any]]]:
    """Step every (segmenter, state) of ``runs`` n frames in ``rounds`` interleaved rounds, so
    that a load change on a shared machine hits each alike: seconds per step, and the outputs."""
    per: dict[Any, list[float]] = {k: [] for k in runs}
    outs: dict[Any, list[Any]] = {k: [] for k in runs}
    for _ in range(rounds):
        for key, (seg, state) in runs.items():
            for i in range(max(1, n // rounds)):
                f = copy.copy(frames[i % len(frames)])
                t0 = time.perf_counter()
                tracks = seg.step(state, f)
                per[key].append(time.perf_counter() - t0)
                outs[key].append(tracks)
    return per, outs


def _compare_speedups(cfg, checkpoint, device: str, vocab, size: tuple[int, int], text: str, n: int,
                      rounds: int = 5) -> dict[str, Any]:
    """Frame rate of each speed-up choice ("none", "int8", "int8+compile", ...): one segmenter per
    choice, stepped in interleaved rounds; ratios are to the first choice. Agreement: the share of the first choice's
    published instances that the other reproduces (same track id, mask IoU >= 0.9)."""
    from streamseg.errors import ConfigError
    from streamseg.predictor.segmenter import build_segmenter
    from streamseg.predictor.speedups import check_speedups

    choices = [c.strip() for c in text.split(",") if c.strip()]
    if not choices:
        raise ConfigError("--speedups: give choices such as none,int8,compile")
    width, height = size
    frames = _frames(width, height, min(max(n, 2), _PRERENDER))
    runs: dict[str, tuple[Any, Any]] = {}
    for choice in choices:
        names = [] if choice == "none" else choice.split("+")
        check_speedups(names)
        c = copy.deepcopy(cfg)
        c.model.cpu_speedups = names
        seg = build_segmenter(c, checkpoint, device=device)
        state = seg.init_state(vocab)
        for i in range(_WARMUP):  # (and the compile of each size)
            seg.step(state, frames[i % len(frames)])
        runs[choice] = (seg, state)
    per, outs = _interleaved(runs, frames, n, rounds)
    base = choices[0]
    result = {}
    for choice in choices:
        med = statistics.median(per[choice])
        result[choice] = {"frames": len(per[choice]), "ms_median": round(med * 1e3, 2),
                          "fps_median": round(1.0 / med, 2),
                          "speed_ratio": round(statistics.median(per[base]) / med, 3),
                          "agreement": round(_agreement(outs[base], outs[choice]), 3)}
    return {"size": f"{width}x{height}", "choices": result}


def _agreement(reference: list, other: list) -> float:
    import numpy as np

    from streamseg.masks import crop_iou

    hits = total = 0
    for a, b in zip(reference, other):
        by_id = {x.track_id: x for x in b.instances}
        for inst in a.instances:
            total += 1
            o = by_id.get(inst.track_id)
            if o is not None and crop_iou(inst.crop, inst.mask_box, o.crop, o.mask_box) >= 0.9:
                hits += 1
    return hits / total if total else float(np.nan)


def _measure(seg, vocab, width: int, height: int, n: int) -> dict[str, Any]:
    frames = _frames(width, height, min(n, _PRERENDER))
    state = seg.init_state(vocab)
    for i in range(_WARMUP):
        seg.step(state, frames[i % len(frames)])
    per: dict[str, list[float]] = {k: [] for k in (*COMPONENTS, "total")}
    instances = []
    t0 = time.perf_counter()
    for i in range(n):
        f = frames[i % len(frames)]
        f.index = _WARMUP + i
        tracks = seg.step(state, f)
        for k in per:
            per[k].append(tracks.timings_ms.get(k, 0.0))
        instances.append(len(tracks.instances))
    wall = time.perf_counter() - t0
    return {
        "frames": n, "fps": round(n / wall, 2),
        "ms_median": {k: round(statistics.median(v), 2) for k, v in per.items()},
        # Means too: TCM runs once per window of W frames, so its median hides its cost.
        "ms_mean": {k: round(statistics.fmean(v), 2) for k, v in per.items()},
        "ms_p95_total": round(_p95(per["total"]), 2),
        "instances_mean": round(statistics.fmean(instances), 2),
        "inference_size": list(seg.model.input_size(height, width)),
    }


def _memory(seg, vocab, size: tuple[int, int], device: str) -> dict[str, Any]:
    """Peak RSS of the process so far, plus Python-heap peak (tracemalloc) over a few frames."""
    import torch

    frames = _frames(*size, 5)
    state = seg.init_state(vocab)
    seg.step(state, frames[0])
    tracemalloc.start()
    for f in frames:
        seg.step(state, f)
    _, py_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    out = {"ru_maxrss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
           "tracemalloc_peak_mb_per_step": round(py_peak / 2**20, 2),
           "rss_mb_now": round(_rss_mb(), 1)}
    if device == "cuda":
        out["cuda_peak_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def _soak(seg, vocab, size: tuple[int, int], n: int) -> dict[str, Any]:
    """RSS over n frames of one stream: after 100 (warm), every 1,000, and after n."""
    frames = _frames(*size, _PRERENDER)
    state = seg.init_state(vocab)
    marks = sorted({m for m in (100, *range(1000, n + 1, 1000), n) if m <= n})
    rss: dict[str, float] = {}
    state_bytes: dict[str, int] = {}
    max_id = 0
    t0 = time.perf_counter()
    for i in range(1, n + 1):
        f = frames[i % len(frames)]
        f.index = i
        tracks = seg.step(state, f)
        if tracks.instances:
            max_id = max(max_id, max(x.track_id for x in tracks.instances))
        if i in marks:
            rss[str(i)] = round(_rss_mb(), 1)
            state_bytes[str(i)] = _state_bytes(state)
        if i % 250 == 0:  # progress (stderr), also evidence if a long soak is cut short
            print(f"soak: {i}/{n} frames, rss {_rss_mb():.1f} MB, state {_state_bytes(state)} B, "
                  f"{i / (time.perf_counter() - t0):.1f} fps", file=sys.stderr, flush=True)
    return {"frames": n, "rss_mb": rss, "state_bytes": state_bytes, "highest_track_id": max_id,
            "fps": round(n / (time.perf_counter() - t0), 2)}


def _state_bytes(state) -> int:
    ms = state.model_state
    tensors = [ms.queries, ms.memory, ms.memory_len, ms.taxonomy, ms.tcm_scores, *ms.window]
    refs = [*state.track_refs.values(), *(t.reference for t in state.targets.targets.values())]
    return (sum(t.numel() * t.element_size() for t in tensors if t is not None) + state.tracks.nbytes()
            + sum(r.nbytes for r in refs if r is not None))


def _params(model) -> dict[str, float]:
    # (with the onnx speed-up the backbone's and pixel decoder's weights live in its graph)
    counts = {name: getattr(mod, "exported_params", None) or sum(p.numel() for p in mod.parameters())
              for name, mod in model.named_children()}
    counts["total"] = sum(counts.values()) + sum(p.numel() for p in model.parameters(recurse=False))
    out = {name: round(n / 1e6, 3) for name, n in counts.items()}
    return out


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


def _print(r: dict[str, Any]) -> None:
    print(f"config {r['config']}  device {r['device']}  threads {r['torch_threads']}/{r['cpu_count']} cores  "
          f"load avg {r['loadavg_1m_at_start']} -> {r['loadavg_1m_at_end']}")
    print(f"vocabulary {r['vocabulary']['names']} names ({r['vocabulary']['encoder']}); "
          f"params (M): " + ", ".join(f"{k} {v}" for k, v in r["params_m"].items()))
    header = f"{'size':>10} {'infer':>9} {'fps':>6} " + " ".join(f"{k[:8]:>8}" for k in (*COMPONENTS, "total")) \
        + f" {'p95':>7} {'inst':>5}"
    print(header)
    for size, m in r["sizes"].items():
        infer = "x".join(str(v) for v in m["inference_size"][::-1])
        cells = " ".join(f"{m['ms_median'][k]:8.1f}" for k in (*COMPONENTS, "total"))
        print(f"{size:>10} {infer:>9} {m['fps']:6.2f} {cells} {m['ms_p95_total']:7.1f} {m['instances_mean']:5.1f}")
        means = " ".join(f"{m['ms_mean'][k]:8.1f}" for k in (*COMPONENTS, "total"))
        print(f"{'(mean)':>10} {'':>9} {'':>6} {means}")
    print("(ms: medians over the measured frames, then means; infer = network input WxH; "
          "fps = frames / wall time)")
    mem = r["memory"]
    print("memory: peak RSS {ru_maxrss_mb} MB, RSS now {rss_mb_now} MB, python heap peak per step "
          "{tracemalloc_peak_mb_per_step} MB".format(**mem)
          + (f", CUDA peak {mem['cuda_peak_mb']} MB" if "cuda_peak_mb" in mem else ""))
    if "targets" in r:
        t = r["targets"]
        print(f"targets at {t['size']} (segmenter.step, {t['rounds']} interleaved rounds; fps cost against "
              f"{t['base']} targets: median of the rounds [lowest, highest]): " + "; ".join(
            f"{c}: {m['fps_median']} fps ({m['ms_median']} ms median"
            + (f", {m['fps_cost_pct_median']:+.1f} % [{min(m['fps_cost_pct_by_round']):+.1f}, "
               f"{max(m['fps_cost_pct_by_round']):+.1f}]" if "fps_cost_pct_median" in m else "")
            + ")" for c, m in t["counts"].items()))
    if "speedups" in r:
        sp = r["speedups"]
        print(f"speed-ups at {sp['size']} (segmenter.step, interleaved rounds; ratio to the first; agreement = "
              f"its instances reproduced):")
        for c, m in sp["choices"].items():
            print(f"  {c:>22}: {m['fps_median']:6.2f} fps ({m['ms_median']} ms median), x{m['speed_ratio']}, "
                  f"agreement {m['agreement']}")
    if "soak" in r:
        s = r["soak"]
        print(f"soak: {s['frames']} frames at {s['fps']} fps; RSS MB after " +
              ", ".join(f"{k}: {v}" for k, v in s["rss_mb"].items()) +
              "; state bytes " + ", ".join(f"{k}: {v}" for k, v in s["state_bytes"].items()) +
              f"; highest track id {s['highest_track_id']}")
