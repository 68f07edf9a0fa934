"""The body of ``streamseg run``: arguments -> :func:`build_engine` -> run -> report.

Kept apart from ``commands.py`` so the CLI parser stays import-light (no numpy/zmq/av until run).
The argparse Namespace stops here: the library (build_engine, Engine) takes plain values.
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from streamseg.config import Config, load_config
from streamseg.engine.build import build_engine, is_loopback
from streamseg.engine.status import StreamStatus, summary_text, terminal_line
from streamseg.errors import ConfigError, StreamsegError


def run_command(args: argparse.Namespace) -> int:
    from streamseg.predictor.model_choice import apply_model, check_trained, config_name

    apply_model(args)
    cfg = None
    if args.config is None and args.checkpoint:  # an imported checkpoint carries its config
        from streamseg.predictor.checkpoint import self_contained_config

        cfg = self_contained_config(args.checkpoint, args.set)
    cfg = cfg or load_config(config_name(args.config), args.set)
    _apply_flags(cfg, args)
    if args.segmenter == "model":
        check_trained(cfg, args.checkpoint, args.untrained, config_name(args.config))
    show_line = not args.quiet and sys.stderr.isatty()
    curve = None
    if args.curve:
        from streamseg.transport.curve import CurveServer

        curve = CurveServer(args.curve)
    engine = build_engine(cfg, args.source, stream_ids=args.stream_id, segmenter=args.segmenter,
                          checkpoint=args.checkpoint, device=args.device, vocabulary=_names(args) or args.vocab, record=args.record,
                          max_frames=args.max_frames, duration_s=args.duration,
                          on_status=_status_printer() if show_line else None,
                          on_stream_error=_print_stream_error, on_stream_warning=_print_stream_warning,
                          curve=curve)
    _note_other_classes(engine)
    publisher = engine.publisher  # the socket itself, before a results tee wraps it
    tee = _results_tee(args, engine.publisher)
    if tee is not None:
        engine.publisher = tee
    metrics_server = None
    if args.metrics is not None:
        from streamseg.engine.metrics import EngineMetrics, MetricsServer

        engine.metrics = EngineMetrics()
        engine.metrics.attach(engine)
        metrics_server = MetricsServer(engine.metrics.registry, args.metrics,
                                       healthy=lambda: not engine.stopping).start()
    control = None
    if args.control:
        from streamseg.control.server import ControlServer
        from streamseg.engine.build import vocabulary_maker

        control = ControlServer(engine, args.control, cfg, vocabulary_maker(cfg, engine.segmenter),
                                curve=curve).start()
    for address in [cfg.engine.publish, args.control or ""]:
        if address and curve is None and not is_loopback(address.lstrip(">")):
            print(f"streamseg: warning: {address} is reachable from other machines and not authenticated",
                  file=sys.stderr, flush=True)
    if not args.quiet:
        print(f"streamseg: publishing {len(args.source)} stream(s) on {engine.publisher.address}"
              + (f", control on {control.address}" if control else ""), file=sys.stderr, flush=True)

    teardown = threading.Event()

    def on_signal(signum, _frame) -> None:
        if teardown.is_set() or engine.shutting_down:
            return  # EOS, the MP4 trailer, the results files: bounded in time, so let them finish
        if engine.stopping:  # a second signal: the user insists (e.g. a long model step)
            raise KeyboardInterrupt
        engine.stop()  # the loop sees it within ~50 ms: EOS on every stream, MP4 finalised

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        if args.wait_subscribers:
            _wait_subscribers(publisher, engine, args)
        report = engine.run()
    finally:
        teardown.set()
        try:
            if control is not None:
                control.close()
            if metrics_server is not None:
                metrics_server.close()
            engine.close()
            if tee is not None:
                tee.close_writers()
            if curve is not None:
                curve.close()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
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
    if args.publish is not None:  # "" is an error, not the default
        from streamseg.transport.address import check_endpoint

        check_endpoint(args.publish, "--publish")
        cfg.engine.publish = args.publish
    if args.control is not None:
        from streamseg.transport.address import check_endpoint

        check_endpoint(args.control, "--control")
    if args.realtime:
        cfg.source.realtime = True
    if args.loop:
        cfg.source.loop = True
    if args.wait_subscribers < 0:
        raise ConfigError("--wait-subscribers must be >= 0")
    if args.wait_timeout <= 0:
        raise ConfigError("--wait-timeout must be > 0")
    if args.wait_subscribers > 1 and cfg.engine.publish.startswith(">"):
        raise ConfigError(f"--wait-subscribers {args.wait_subscribers}: through a proxy ({cfg.engine.publish}) "
                          "the engine sees each subscription once, whoever holds it: use --wait-subscribers 1")
    if args.max_frames is not None and args.max_frames < 1:
        raise ConfigError("--max-frames must be >= 1")
    if args.duration is not None and args.duration <= 0:
        raise ConfigError("--duration must be > 0")
    for flag, path in (("--save-json", args.save_json), ("--save-rle", args.save_rle)):
        if path and not Path(path).resolve().parent.is_dir():
            raise ConfigError(f"{flag} {path}: folder {Path(path).resolve().parent} does not exist")


def _wait_subscribers(publisher, engine, args: argparse.Namespace) -> None:
    """Hold the first frame until ``--wait-subscribers`` subscribers listen to every stream's seg topic."""
    from streamseg.transport.protocol import SEG, topic

    n, timeout_s = args.wait_subscribers, args.wait_timeout
    topics = [topic(SEG, st.spec.stream_id) for st in engine.active_streams()]
    if not args.quiet:
        print(f"streamseg: waiting for {n} subscriber(s) on {publisher.address} (up to {timeout_s:g}s)",
              file=sys.stderr, flush=True)
    if publisher.wait_subscribers(n, topics, timeout_s, stop=lambda: engine.stopping):
        return
    if engine.stopping:
        raise KeyboardInterrupt
    have = min(publisher.subscribers(t) for t in topics)
    raise StreamsegError(f"--wait-subscribers {n}: {have} subscriber(s) after {timeout_s:g}s on "
                         f"{publisher.address}; no frame was processed")


def _note_other_classes(engine) -> None:
    """One line when the vocabulary shares no name with the classes the checkpoint was trained on."""
    trained = getattr(engine.segmenter, "trained_names", None)
    if not trained or set(trained) & set(engine.vocabulary.names):
        return
    few = ", ".join(trained[:5]) + (", ..." if len(trained) > 5 else "")
    print(f"streamseg: note: the model was trained on other classes ({few}); "
          f"{', '.join(engine.vocabulary.names[:5])} rely on its text embeddings alone", file=sys.stderr, flush=True)


def _names(args: argparse.Namespace) -> list[str] | None:
    """--names person,car -> ["person", "car"] (None without the flag)."""
    if args.names is None:
        return None
    if args.vocab:
        raise ConfigError("give --names or --vocab, not both")
    names = [n.strip() for n in args.names.split(",") if n.strip()]
    if not names:
        raise ConfigError("--names needs at least one class name, e.g. --names person,car")
    if len(set(names)) != len(names):
        raise ConfigError(f"--names has a name twice: {args.names}")
    return names


def _results_tee(args: argparse.Namespace, publisher):
    """--save-json / --save-rle: writers fed by a tee in front of the publisher (results_writers.py)."""
    if not (args.save_json or args.save_rle):
        return None
    from streamseg.engine.results_writers import ResultsTee, RleLogWriter, YtvisWriter

    writers = []
    if args.save_json:
        writers.append(YtvisWriter(args.save_json))
    if args.save_rle:
        writers.append(RleLogWriter(args.save_rle))
    return ResultsTee(publisher, writers)


def _print_stream_error(stream: str, message: str) -> None:
    print(f"streamseg: error: stream {stream}: {message}", file=sys.stderr, flush=True)


def _print_stream_warning(stream: str, message: str) -> None:
    print(f"streamseg: warning: stream {stream}: {message}", file=sys.stderr, flush=True)


def _status_printer():
    def show(statuses: list[StreamStatus]) -> None:
        line = terminal_line(statuses)
        sys.stderr.write("\r" + line[:200].ljust(80))
        sys.stderr.flush()

    return show
