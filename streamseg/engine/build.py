"""One way to build an engine: config + source URIs (+ optional segmenter) -> a ready Engine.

``streamseg run`` and Python callers both come through :func:`build_engine`; nothing here reads
command-line arguments. Sources open first (a wrong URI fails in milliseconds, before a model is
built); whatever was opened is closed again if a later step fails.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from streamseg.config import Config
from streamseg.engine.pipeline import Engine, StreamSpec
from streamseg.engine.status import StreamStatus
from streamseg.errors import ConfigError
from streamseg.interface import Segmenter, Vocabulary


def build_engine(config: Config, sources: Sequence[str], *, stream_ids: Sequence[str] | None = None,
                 segmenter: Segmenter | str = "model", checkpoint: str | None = None, device: str = "auto",
                 vocabulary: Vocabulary | str | Sequence[str] | None = None, record: str | None = None,
                 publisher: Any = None, curve: Any = None, max_frames: int | None = None, duration_s: float | None = None,
                 on_status: Callable[[list[StreamStatus]], None] | None = None,
                 on_stream_error: Callable[[str, str], None] | None = None,
                 on_stream_warning: Callable[[str, str], None] | None = None) -> Engine:
    """Open ``sources`` (URIs, options from ``config.source``), build the segmenter and a Publisher
    on ``config.engine.publish`` (unless one is given), and return the Engine (not yet running).

    ``segmenter``: "model" (``build_segmenter(config, checkpoint)``), "ground-truth" (the test
    double for synthetic:// sources), or any object implementing the Segmenter protocol.
    ``vocabulary``: a Vocabulary, a vocabulary file path, a list of class names (embedded with the
    text encoder the segmenter's checkpoint expects), or None (the segmenter's default).
    ``record``: overlay MP4/MOV/MKV path (checked here: ConfigError); with several streams stream
    <id> goes to <stem>-<id><suffix>.
    ``curve``: a CurveServer making the publisher a CURVE server.
    The engine owns the publisher it made: ``engine.close()`` closes it after ``run()``.
    """
    from streamseg.sources import open_source

    ids = check_stream_ids(len(sources), stream_ids)
    record_paths = record_paths_for(record, ids)
    if record_paths:
        from streamseg.engine.recording import check_record_target

        for path in record_paths.values():  # before any source or model: a bad target fails at once
            check_record_target(path, config.engine.record_codec)
    specs: list[StreamSpec] = []
    owned_publisher = None
    try:
        for sid, uri in zip(ids, sources):
            specs.append(StreamSpec(stream_id=sid, source=open_source(uri, config.source),
                                    record_path=record_paths.get(sid)))
        seg, vocab = _segmenter_and_vocabulary(config, segmenter, checkpoint, vocabulary, device)
        if publisher is None:
            from streamseg.transport.publisher import Publisher

            e = config.engine
            publisher = owned_publisher = Publisher(e.publish, send_hwm=e.send_hwm, linger_ms=e.linger_ms,
                                                    curve=curve)
    except BaseException:
        for spec in specs:
            spec.source.close()
        raise
    engine = Engine(seg, vocab, specs, publisher=publisher, config=config.engine, max_frames=max_frames,
                    duration_s=duration_s, on_status=on_status, on_stream_error=on_stream_error,
                    on_stream_warning=on_stream_warning,
                    recorder_factory=_recorder_factory(config))
    engine.owned_publisher = owned_publisher
    return engine


def check_stream_ids(count: int, names: Sequence[str] | None) -> list[str]:
    """Stream ids for ``count`` sources: "0", "1", ... unless ``names`` gives one per source."""
    if not names:
        return [str(i) for i in range(count)]
    if len(names) != count:
        raise ConfigError(f"--stream-id given {len(names)} times for {count} --source; "
                          "give one per source or none")
    for name in names:
        check_stream_id(name)
    if len(set(names)) != len(names):
        raise ConfigError(f"--stream-id values must be unique, got {list(names)}")
    return list(names)


def check_stream_id(name: Any) -> str:
    if not isinstance(name, str) or not name or "/" in name or any(c.isspace() for c in name):
        raise ConfigError(f"stream id {name!r}: must be a non-empty string, without '/' or spaces")
    return name


def record_paths_for(record: str | None, stream_ids: Sequence[str]) -> dict[str, str]:
    if not record:
        return {}
    if len(stream_ids) == 1:
        return {stream_ids[0]: record}
    p = Path(record)
    return {sid: str(p.with_name(f"{p.stem}-{sid}{p.suffix}")) for sid in stream_ids}


def _segmenter_and_vocabulary(config: Config, segmenter: Segmenter | str, checkpoint: str | None,
                              vocabulary: Vocabulary | str | Sequence[str] | None,
                              device: str = "auto") -> tuple[Segmenter, Vocabulary]:
    if isinstance(vocabulary, str):
        from streamseg.vocab.files import load_vocabulary

        vocabulary = load_vocabulary(vocabulary)
    elif vocabulary is not None and not isinstance(vocabulary, Vocabulary):  # class names
        names = [str(n) for n in vocabulary]
        seg, _ = _segmenter_and_vocabulary(config, segmenter, checkpoint, Vocabulary(names=names), device)
        return seg, vocabulary_maker(config, seg)(names)
    if segmenter == "ground-truth":
        from streamseg.data.synthetic_scene import SYNTHETIC_CLASSES
        from streamseg.engine.ground_truth import GroundTruthSegmenter

        # A source without ground truth fails its stream at the first frame (one-line error).
        return GroundTruthSegmenter(), vocabulary or Vocabulary(names=list(SYNTHETIC_CLASSES))
    if segmenter == "model":
        from streamseg.predictor.device import resolve_device
        from streamseg.predictor.segmenter import build_segmenter

        segmenter = build_segmenter(config, checkpoint or config.checkpoint, device=resolve_device(device))
    elif isinstance(segmenter, str):
        raise ConfigError(f"unknown segmenter {segmenter!r} (expected 'model' or 'ground-truth')")
    vocab = vocabulary or getattr(segmenter, "vocabulary", None)
    if vocab is None:
        raise ConfigError("no vocabulary: give --vocab FILE (from `streamseg vocab build`), "
                          "vocabulary.names in the config, or a checkpoint that carries one")
    return segmenter, vocab


def _recorder_factory(config: Config) -> Callable[[StreamSpec], Any]:
    e = config.engine

    def make(spec: StreamSpec) -> Any:
        from streamseg.engine.overlay import OverlayRecorder

        fps = e.record_fps or float(getattr(spec.source, "fps", None) or 30.0)
        assert spec.record_path is not None, "recorder asked for a stream without --record"
        return OverlayRecorder(spec.record_path, fps=fps, codec=e.record_codec, alpha=e.mask_alpha,
                               queue_size=e.record_queue, live=bool(getattr(spec.source, "live", True)),
                               fragment_s=e.record_fragment_s)

    return make


def vocabulary_maker(config: Config, segmenter: Any) -> Callable[[list[str]], Vocabulary]:
    """names -> Vocabulary, embedded with the text encoder the segmenter's checkpoint expects
    (the test double needs no embeddings)."""
    encoder_id = getattr(segmenter, "encoder_id", None)
    if encoder_id is None:
        return lambda names: Vocabulary(names=list(names))
    from streamseg.weights_import.convert import CLOSED_SET_ENCODER, closed_set_names

    if encoder_id == CLOSED_SET_ENCODER:  # an imported closed-set model: a subset of its classes
        return lambda names: closed_set_names(segmenter.vocabulary, list(names))

    def make(names: list[str]) -> Vocabulary:
        from streamseg.vocab.encoders import MINILM_ID
        from streamseg.vocab.files import build_vocabulary

        spec = "minilm" if encoder_id == MINILM_ID else encoder_id
        return build_vocabulary(names, spec, config.vocabulary.templates, use_cache=config.vocabulary.cache)

    return make


def is_loopback(address: str) -> bool:
    """tcp addresses on 127.x / localhost / ::1, and ipc/inproc, reach no other machine."""
    if not address.startswith("tcp://"):
        return True
    host = address[len("tcp://"):].rsplit(":", 1)[0].strip("[]")
    return host in ("localhost", "::1") or host.startswith("127.")
