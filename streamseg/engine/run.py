"""The body of ``streamseg run``: turn arguments into an Engine, run it, report.

Kept apart from ``commands.py`` so the CLI parser stays import-light (no numpy/zmq/av until run).
"""
from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Any

from streamseg.config import Config, load_config
from streamseg.engine.pipeline import Engine, StreamSpec
from streamseg.engine.status import StreamStatus, summary_text, terminal_line
from streamseg.errors import ConfigError
from streamseg.interface import Vocabulary


def run_command(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, args.set)
    if args.config is None and args.checkpoint:  # an imported checkpoint carries its config
        from streamseg.predictor.checkpoint import self_contained_config

        cfg = self_contained_config(args.checkpoint, args.set) or cfg
    _apply_flags(cfg, args)
    stream_ids = _stream_ids(args.source, args.stream_id)

    from streamseg.sources import open_source
    from streamseg.sources.base import SourceOptions

    e = cfg.engine
    options = SourceOptions(realtime=e.realtime, loop=e.loop, open_timeout_s=e.open_timeout_s,
                            read_timeout_s=e.read_timeout_s, reconnect_initial_s=e.reconnect_initial_s,
                            reconnect_max_s=e.reconnect_max_s)
    record_paths = _record_paths(args.record, stream_ids)
    specs: list[StreamSpec] = []
    try:  # sources first: a wrong URI fails in milliseconds, before a model is built
        for sid, uri in zip(stream_ids, args.source):
            specs.append(StreamSpec(stream_id=sid, source=open_source(uri, options),
                                    record_path=record_paths.get(sid)))
        segmenter, vocabulary = _build_segmenter(cfg, args)
        sink = _open_sink(e.publish, e.send_hwm, e.linger_ms)
    except BaseException:
        for spec in specs:
            spec.source.close()
        raise

    show_line = not args.quiet and sys.stderr.isatty()
    if not args.quiet:
        print(f"streamseg: publishing {len(specs)} stream(s) on {sink.address}", file=sys.stderr, flush=True)
    engine = Engine(segmenter, vocabulary, specs, sink=sink, encoder=_protocol(), config=e,
                    max_frames=args.max_frames, duration_s=args.duration,
                    on_status=_status_printer() if show_line else None,
                    recorder_factory=_recorder_factory(e, specs))

    def on_signal(signum, _frame) -> None:
        if engine.stopping:  # a second signal: the user insists (e.g. a long model step)
            raise KeyboardInterrupt
        engine.stop()  # the loop sees it within ~50 ms: EOS on every stream, MP4 finalised

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        report = engine.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sink.close(e.linger_ms)
    if show_line:
        sys.stderr.write("\n")
    if not args.quiet:
        print(summary_text(report.summaries, report.send_dropped), flush=True)
    for line in report.errors:
        if not line.startswith("stream "):  # stream errors were printed when they happened
            print(f"streamseg: error: {line}", file=sys.stderr)
    return 2 if report.errors else 0


def _apply_flags(cfg: Config, args: argparse.Namespace) -> None:
    """CLI flags win over the config file."""
    if args.publish:
        cfg.engine.publish = args.publish
    if args.realtime:
        cfg.engine.realtime = True
    if args.loop:
        cfg.engine.loop = True
    if args.max_frames is not None and args.max_frames < 1:
        raise ConfigError("--max-frames must be >= 1")
    if args.duration is not None and args.duration <= 0:
        raise ConfigError("--duration must be > 0")
    if args.record and Path(args.record).suffix.lower() not in (".mp4", ".mov", ".mkv"):
        raise ConfigError(f"--record {args.record}: the file name must end in .mp4 (or .mov/.mkv)")
    if args.record and not Path(args.record).resolve().parent.is_dir():
        raise ConfigError(f"--record {args.record}: folder {Path(args.record).resolve().parent} does not exist")


def _stream_ids(sources: list[str], names: list[str] | None) -> list[str]:
    if not names:
        return [str(i) for i in range(len(sources))]
    if len(names) != len(sources):
        raise ConfigError(f"--stream-id given {len(names)} times for {len(sources)} --source; "
                          "give one per source or none")
    for name in names:
        if not name or "/" in name or any(c.isspace() for c in name):
            raise ConfigError(f"--stream-id {name!r}: must be non-empty, without '/' or spaces")
    if len(set(names)) != len(names):
        raise ConfigError(f"--stream-id values must be unique, got {names}")
    return list(names)


def _record_paths(record: str | None, stream_ids: list[str]) -> dict[str, str]:
    if not record:
        return {}
    if len(stream_ids) == 1:
        return {stream_ids[0]: record}
    p = Path(record)
    return {sid: str(p.with_name(f"{p.stem}-{sid}{p.suffix}")) for sid in stream_ids}


def _build_segmenter(cfg: Config, args: argparse.Namespace) -> tuple[Any, Vocabulary]:
    if args.segmenter == "ground-truth":
        from streamseg.engine.ground_truth import GroundTruthSegmenter
        from streamseg.data.synthetic_scene import SYNTHETIC_CLASSES

        # A source without ground truth fails its stream at the first frame (one-line error).
        return GroundTruthSegmenter(), Vocabulary(names=list(SYNTHETIC_CLASSES))

    from streamseg.predictor.segmenter import build_segmenter  # the SEGMENTER engineer's contract

    segmenter = build_segmenter(cfg, args.checkpoint or cfg.checkpoint)
    if args.vocab:
        from streamseg.vocab.files import load_vocabulary

        vocabulary = load_vocabulary(args.vocab)
    else:
        vocabulary = getattr(segmenter, "vocabulary", None)
        if vocabulary is None:
            raise ConfigError("no vocabulary: give --vocab FILE (from `streamseg vocab build`) "
                              "or a checkpoint that carries one")
    return segmenter, vocabulary


def _open_sink(address: str, send_hwm: int, linger_ms: int):
    from streamseg.transport.publisher import Publisher

    return Publisher(address, send_hwm=send_hwm, linger_ms=linger_ms)


def _protocol():
    from streamseg.transport import protocol

    return protocol


def _recorder_factory(e, specs: list[StreamSpec]):
    def make(spec: StreamSpec):
        from streamseg.engine.overlay import OverlayRecorder

        fps = e.record_fps or float(getattr(spec.source, "fps", None) or 30.0)
        return OverlayRecorder(spec.record_path, fps=fps, codec=e.record_codec, alpha=e.mask_alpha,
                               queue_size=e.record_queue)

    return make


def _status_printer():
    def show(statuses: list[StreamStatus]) -> None:
        line = terminal_line(statuses)
        sys.stderr.write("\r" + line[:200].ljust(80))
        sys.stderr.flush()

    return show

