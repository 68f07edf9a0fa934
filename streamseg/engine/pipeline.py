"""The Engine: sources -> latest-frame slots -> one inference loop -> encode -> publish (+ overlay).

One reader thread per stream pulls frames from its source into that stream's
:class:`LatestFrameSlot`. Live sources use drop mode (the reader never waits; inference always gets
the newest frame); files read as fast as possible use wait mode (every frame is processed). A
single inference loop round-robins over the slots, so several streams share one segmenter, each
with its own state. The loop publishes a seg message per frame, a status message per stream at
``status_hz``, and exactly one EOS per stream (source ended, source error, or engine stopped).
"""
from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol

from streamseg.engine.config import EngineConfig
from streamseg.engine.slot import LatestFrameSlot, SlotItem
from streamseg.engine.status import StreamStatus, StreamSummary, top_labels
from streamseg.engine.timings import RateMeter, StageTimings
from streamseg.errors import StreamsegError
from streamseg.interface import Frame, Segmenter, Tracks, Vocabulary
from streamseg.sources.base import Source

# EOS reasons (the ``reason`` field of eos messages).
EOS_END = "end"  # the source ended (end of file)
EOS_ERROR = "error"  # the source failed; the stream's error is in its last status message
EOS_STOPPED = "stopped"  # the engine was stopped (signal, --duration, --max-frames)


class MessageSink(Protocol):
    """Where every engine message goes out (``streamseg.transport.Publisher``): non-blocking sends."""

    dropped: int
    last_encode_ms: float  # cost of the last publish_seg's encoding and sending, and its size
    last_send_ms: float
    last_bytes: int

    def publish_seg(self, stream: str, seq: int, epoch: int, frame: Frame, tracks: Tracks,
                    vocab: Vocabulary, t_publish_ns: int | None = None) -> bool: ...

    def publish_status(self, stream: str, status: Mapping[str, Any]) -> bool: ...

    def publish_eos(self, stream: str, epoch: int, seq: int, reason: str) -> bool: ...


@dataclass
class StreamSpec:
    stream_id: str
    source: Source
    record_path: str | None = None


@dataclass
class _Stream:
    """Run-time state of one stream (touched by its reader thread and the inference loop)."""

    spec: StreamSpec
    slot: LatestFrameSlot[SlotItem]
    seg_state: object  # what segmenter.init_state returned; only the segmenter reads it
    timings: StageTimings = field(default_factory=StageTimings)
    rate_in: RateMeter = field(default_factory=RateMeter)
    rate_out: RateMeter = field(default_factory=RateMeter)
    frames_in: int = 0
    frames_out: int = 0
    seq: int = 0
    epoch: int = 0
    bytes_sent: int = 0
    reader: threading.Thread | None = None
    end_reason: str | None = None  # set by the reader when the source finishes
    error: str | None = None
    warning: str | None = None  # the source ended oddly but not in error (e.g. a truncated file)
    eos_sent: bool = False
    eos_reason: str = ""
    recorder: Any = None  # OverlayRecorder
    record_error: str | None = None  # the recording failed mid-run (reported at once, once)
    vocabulary: Vocabulary | None = None  # this stream's (set_vocabulary may swap it per stream)
    paused: bool = False  # control: frames are left in the slot, status goes on, no seg
    last_tracks: Tracks | None = None
    t_start: float = 0.0
    t_end: float = 0.0


@dataclass
class EngineReport:
    summaries: list[StreamSummary]
    send_dropped: int
    errors: list[str]  # one line per failed stream
    warnings: list[str]  # one line per stream whose source ended early (e.g. a truncated file)
    stopped: bool  # stop() was called (signal / duration) rather than every source ending


class Engine:
    def __init__(self, segmenter: Segmenter, vocabulary: Vocabulary, streams: list[StreamSpec],
                 publisher: MessageSink, config: EngineConfig | None = None,
                 max_frames: int | None = None, duration_s: float | None = None,
                 on_status: Callable[[list[StreamStatus]], None] | None = None,
                 recorder_factory: Callable[[StreamSpec], Any] | None = None,
                 on_stream_error: Callable[[str, str], None] | None = None, metrics: Any = None,
                 on_stream_warning: Callable[[str, str], None] | None = None) -> None:
        """``on_stream_error(stream_id, message)`` is called (from the inference loop) when a stream
        fails, while the others go on; ``on_stream_warning`` likewise when its source ended early.
        Every error and warning is also in the report."""
        if not streams:
            raise StreamsegError("no source given")
        ids = [s.stream_id for s in streams]
        if len(set(ids)) != len(ids):
            raise StreamsegError(f"stream ids must be unique, got {ids}")
        self.segmenter = segmenter
        self.vocabulary = vocabulary
        self.publisher = publisher
        self.owned_publisher: Any = None  # closed by close(): set when the engine's builder made it
        self.on_stream_error = on_stream_error
        self.on_stream_warning = on_stream_warning
        self.metrics = metrics  # streamseg.engine.metrics.EngineMetrics: stage histograms
        self.config = config or EngineConfig()
        self.max_frames = max_frames
        self.duration_s = duration_s
        self.on_status = on_status
        self._recorder_factory = recorder_factory
        self._stop = threading.Event()
        self._calls: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._running = False
        self._shutting_down = False
        self._cond = threading.Condition()  # shared by every slot: "some stream has a frame"
        self._streams = [
            _Stream(spec=s, slot=LatestFrameSlot(wait=not bool(getattr(s.source, "live", True)),
                                                 cond=self._cond),
                    seg_state=None)
            for s in streams
        ]

    # ---- control -------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the engine to finish (safe from a signal handler or any thread): sends EOS and ends."""
        self._stop.set()

    @property
    def shutting_down(self) -> bool:
        """The loop has ended and the bounded shutdown (EOS, recordings) has begun."""
        return self._shutting_down

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def call_soon(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the inference loop between two frames (the control socket's way in)."""
        self._calls.put(fn)
        with self._cond:
            self._cond.notify_all()

    def _run_calls(self) -> None:
        while True:
            try:
                fn = self._calls.get_nowait()
            except queue.Empty:
                return
            fn()  # callers catch their own errors (they reply to a client)

    # ---- what the control socket changes (call on the loop thread, through call_soon) ----------

    def stream(self, stream_id: str) -> _Stream:
        for st in self._streams:
            if st.spec.stream_id == stream_id and not st.eos_sent:
                return st
        raise StreamsegError(f"no running stream {stream_id!r}")

    def active_streams(self) -> list[_Stream]:
        return [st for st in self._streams if not st.eos_sent]

    def set_vocabulary(self, vocabulary: Vocabulary, stream_id: str | None = None) -> list[str]:
        """Swap the vocabulary of one stream or all; the next seg message of each shows the new vocab_id."""
        targets = [self.stream(stream_id)] if stream_id is not None else self.active_streams()
        for st in targets:
            self.segmenter.set_vocabulary(st.seg_state, vocabulary)  # checks first (may raise)
        for st in targets:
            st.vocabulary = vocabulary
        if stream_id is None:
            self.vocabulary = vocabulary
        return [st.spec.stream_id for st in targets]

    def add_stream(self, spec: StreamSpec) -> None:
        if any(st.spec.stream_id == spec.stream_id and not st.eos_sent for st in self._streams):
            raise StreamsegError(f"stream {spec.stream_id!r} already runs")
        st = _Stream(spec=spec, slot=LatestFrameSlot(wait=not bool(getattr(spec.source, "live", True)),
                                                     cond=self._cond), seg_state=None)
        self._streams.append(st)
        if self._running:
            self._start_stream(st)

    def remove_stream(self, stream_id: str) -> None:
        st = self.stream(stream_id)
        st.spec.source.close()
        st.slot.close()
        self._finish_stream(st, EOS_STOPPED)

    def _start_stream(self, st: _Stream) -> None:
        if self.metrics is not None:
            sid = st.spec.stream_id
            st.timings.observer = lambda stage, ms: self.metrics.observe(sid, stage, ms)
        st.vocabulary = st.vocabulary or self.vocabulary
        st.seg_state = self.segmenter.init_state(st.vocabulary)
        if st.spec.record_path and self._recorder_factory is not None:
            st.recorder = self._recorder_factory(st.spec)
        st.t_start = time.monotonic()
        st.reader = threading.Thread(target=self._read, args=(st,), daemon=True,
                                     name=f"reader:{st.spec.stream_id}")
        st.reader.start()

    def close(self, linger_ms: int | None = None) -> None:
        """After run(): close the publisher build_engine made (queued messages get linger_ms)."""
        if self.owned_publisher is not None:
            self.owned_publisher.close(self.config.linger_ms if linger_ms is None else linger_ms)
            self.owned_publisher = None

    # ---- main loop ----------------------------------------------------------------------------

    def run(self) -> EngineReport:
        """Run until every stream has ended or stop() is called; always sends EOS and finalises recordings."""
        t0 = time.monotonic()
        try:
            for st in self._streams:
                st.vocabulary = self.vocabulary
                st.seg_state = self.segmenter.init_state(self.vocabulary)
            for st in self._streams:
                self._start_stream(st)
            self._running = True
            self._loop(t0)
        finally:
            self._shutdown()
        return self._report()

    def _loop(self, t0: float) -> None:
        status_period = 1.0 / self.config.status_hz
        next_status = time.monotonic() + status_period
        turn = 0
        while not self._stop.is_set():
            self._run_calls()
            n = len(self._streams)
            now = time.monotonic()
            if self.duration_s is not None and now - t0 >= self.duration_s:
                break
            picked = None
            for k in range(n):
                st = self._streams[(turn + k) % n]
                if st.eos_sent or st.paused:
                    continue
                item = st.slot.take()
                if item is not None:
                    picked = (st, item)
                    turn = (turn + k + 1) % n
                    break
            if picked is not None:
                try:
                    self._process(*picked)
                except StreamsegError as exc:  # e.g. a frame this segmenter cannot handle
                    self._fail_stream(picked[0], str(exc))
            for st in self._streams:
                if not st.eos_sent and st.recorder is not None and st.recorder.error and st.record_error is None:
                    self._recording_failed(st, st.recorder.error)
                if not st.eos_sent and st.slot.finished:
                    self._finish_stream(st, st.end_reason or EOS_END)
            if all(st.eos_sent for st in self._streams):
                break
            now = time.monotonic()
            if now >= next_status:
                self._publish_status(now)
                next_status = now + status_period
            if picked is None:
                with self._cond:
                    if self._calls.empty() and not any(st.slot.has_item() for st in self._streams
                                                       if not st.paused and not st.eos_sent):
                        self._cond.wait(min(0.05, max(0.0, next_status - now)))

    def _process(self, st: _Stream, item: SlotItem) -> None:
        frame, decode_ms, t_put_ns = item.frame, item.decode_ms, item.t_put_ns
        t_take, c_take = time.perf_counter_ns(), time.thread_time_ns()
        tm = st.timings
        tm.add("decode", decode_ms)
        tm.add("slot_wait", (t_take - t_put_ns) / 1e6)
        st.epoch = frame.epoch

        t_before, c_before = time.perf_counter_ns(), time.thread_time_ns()
        tracks = self.segmenter.step(st.seg_state, frame)
        t_step, c_step = time.perf_counter_ns(), time.thread_time_ns()
        step_ms = (t_step - t_before) / 1e6
        inner = tracks.timings_ms or {}
        pre = float(inner.get("preprocess", 0.0))
        post = float(inner.get("postprocess", 0.0))
        if "preprocess" in inner:
            tm.add("preprocess", pre)
        tm.add("segment", max(0.0, step_ms - pre - post))
        if "postprocess" in inner:
            tm.add("postprocess", post)
        for key, ms in inner.items():
            if key not in ("preprocess", "postprocess"):
                tm.add(f"segmenter.{key}", float(ms))

        t_publish_ns = time.time_ns()
        pub = self.publisher
        pub.publish_seg(st.spec.stream_id, st.seq, frame.epoch, frame, tracks, st.vocabulary or self.vocabulary,
                        t_publish_ns)
        st.last_tracks = tracks
        t_pub = time.perf_counter_ns()
        tm.add("encode", pub.last_encode_ms)
        tm.add("publish", pub.last_send_ms)
        tm.add("capture_to_publish", (time.time_ns() - frame.t_capture_ns) / 1e6)
        st.seq += 1
        st.frames_out += 1
        st.bytes_sent += pub.last_bytes
        st.rate_out.tick(time.monotonic())

        if st.recorder is not None and st.record_error is None:
            st.recorder.write(frame, tracks)
            tm.add("record", (time.perf_counter_ns() - t_pub) / 1e6)
        # Everything the engine itself spent on this frame (all but the segmenter's step): wall
        # time, and this thread's CPU time (the engine's own cost even when the CPU is contended).
        tm.add("overhead", (time.perf_counter_ns() - t_take) / 1e6 - step_ms)
        tm.add("overhead_cpu", (time.thread_time_ns() - c_take - (c_step - c_before)) / 1e6)

        if self.max_frames is not None and st.frames_out >= self.max_frames:
            st.spec.source.close()
            st.slot.close()
            self._finish_stream(st, EOS_STOPPED)

    # ---- reader thread ------------------------------------------------------------------------

    def _read(self, st: _Stream) -> None:
        source = st.spec.source
        live = bool(getattr(source, "live", True))
        reason = EOS_END
        frames = None
        try:
            frames = source.frames()
            while not self._stop.is_set() and not st.slot.closed:
                t0, c0 = time.perf_counter_ns(), time.thread_time_ns()
                try:
                    frame = next(frames)
                except StopIteration:
                    break
                # Files: the wall time the source took to decode the frame. Live sources: that call
                # also waited for the frame to exist, so count only this thread's CPU time in it.
                if live:
                    decode_ms = (time.thread_time_ns() - c0) / 1e6
                else:
                    decode_ms = (time.perf_counter_ns() - t0) / 1e6
                st.frames_in += 1
                st.rate_in.tick(time.monotonic())
                if not st.slot.put(SlotItem(frame, decode_ms, time.perf_counter_ns())):
                    break
        except StreamsegError as exc:
            reason, st.error = EOS_ERROR, str(exc)
        except Exception as exc:  # a bug in a source must not take the other streams down
            reason, st.error = EOS_ERROR, f"{type(exc).__name__}: {exc}"
        finally:
            if frames is not None and hasattr(frames, "close"):
                try:
                    frames.close()  # run the source generator's own clean-up (files, pipelines)
                except Exception:
                    pass
            st.warning = getattr(source, "warning", None)
            st.end_reason = EOS_STOPPED if self._stop.is_set() and reason == EOS_END else reason
            st.slot.close()

    # ---- messages -----------------------------------------------------------------------------

    def _snapshot(self, st: _Stream, now: float) -> StreamStatus:
        if st.eos_sent:
            state = "error" if st.eos_reason == EOS_ERROR else "ended"
        elif st.paused:
            state = "paused"
        else:
            state = str(getattr(st.spec.source, "state", "connected"))
        return StreamStatus(
            stream=st.spec.stream_id, source=str(getattr(st.spec.source, "uri", "")), state=state,
            epoch=max(st.epoch, int(getattr(st.spec.source, "epoch", 0))),  # reconnects show at once
            fps_in=st.rate_in.rate(now), fps_out=st.rate_out.rate(now),
            frames_in=st.frames_in, frames_out=st.frames_out, dropped=st.slot.dropped,
            send_dropped=int(self.publisher.dropped), latency_ms=st.timings.percentiles(recent=True),
            error=st.error or st.record_error, instances=len(st.last_tracks.instances) if st.last_tracks else 0,
            top_labels=top_labels([i.label for i in st.last_tracks.instances]) if st.last_tracks else [],
            total_frames=getattr(st.spec.source, "total_frames", None))

    def statuses(self) -> list[StreamStatus]:
        now = time.monotonic()
        return [self._snapshot(st, now) for st in self._streams]

    def _publish_status(self, now: float) -> None:
        snaps = []
        for st in self._streams:
            snap = self._snapshot(st, now)
            snaps.append(snap)
            if not st.eos_sent:
                self.publisher.publish_status(st.spec.stream_id, snap.to_message())
        if self.on_status is not None:
            self.on_status(snaps)

    def _finish_stream(self, st: _Stream, reason: str) -> None:
        """Final status, then the stream's one EOS."""
        if st.eos_sent:
            return
        st.t_end = time.monotonic()
        st.eos_reason = reason
        st.eos_sent = True
        snap = self._snapshot(st, st.t_end)
        self.publisher.publish_status(st.spec.stream_id, snap.to_message())
        self.publisher.publish_eos(st.spec.stream_id, st.epoch, st.seq - 1, reason)
        if st.error and self.on_stream_error is not None:
            self.on_stream_error(st.spec.stream_id, st.error)
        if st.warning and self.on_stream_warning is not None:
            self.on_stream_warning(st.spec.stream_id, st.warning)

    def _recording_failed(self, st: _Stream, message: str) -> None:
        """A recording that fails mid-run is never silent: the error goes on the status topic and
        to ``on_stream_error`` at once. ``record_on_error``: "stop" ends the stream (EOS reason
        error); "continue" keeps publishing, every later status carrying the error."""
        st.record_error = message
        if self.config.record_on_error == "stop":
            self._fail_stream(st, message)
            return
        self.publisher.publish_status(st.spec.stream_id, self._snapshot(st, time.monotonic()).to_message())
        if self.on_stream_error is not None:
            self.on_stream_error(st.spec.stream_id, f"{message} (the stream goes on unrecorded)")

    def _fail_stream(self, st: _Stream, message: str) -> None:
        """End one stream with an error; the others keep running."""
        st.error = message
        try:
            st.spec.source.close()
        except Exception:
            pass
        st.slot.close()
        self._finish_stream(st, EOS_ERROR)

    def _shutdown(self) -> None:
        """Stop readers, send the missing EOS, finalise recordings. Bounded in time."""
        self._shutting_down = True
        for st in self._streams:
            try:
                st.spec.source.close()
            except Exception:
                pass
            st.slot.close()
        for st in self._streams:
            if not st.eos_sent:
                # A reader that already hit an error reports it even when the engine was stopped.
                reason = EOS_ERROR if st.error else EOS_STOPPED
                self._finish_stream(st, reason)
        deadline = time.monotonic() + self.config.shutdown_timeout_s
        for st in self._streams:
            if st.recorder is not None:
                st.recorder.close(timeout=max(0.1, deadline - time.monotonic()))
        for st in self._streams:
            if st.reader is not None:
                st.reader.join(timeout=max(0.0, deadline - time.monotonic()))

    def _report(self) -> EngineReport:
        summaries = []
        errors = []
        warnings = [f"stream {st.spec.stream_id}: {st.warning}" for st in self._streams if st.warning]
        for st in self._streams:
            rec = st.recorder
            summaries.append(StreamSummary(
                stream=st.spec.stream_id, source=str(getattr(st.spec.source, "uri", "")),
                frames=st.frames_out, frames_in=st.frames_in, dropped=st.slot.dropped,
                seconds=max(0.0, (st.t_end or time.monotonic()) - st.t_start),
                eos_reason=st.eos_reason, latency_ms=st.timings.percentiles(recent=False),
                bytes_per_message=st.bytes_sent / st.frames_out if st.frames_out else 0.0,
                record_path=str(rec.path) if rec is not None else None,
                record_frames=rec.frames_written if rec is not None else 0,
                error=st.error or (rec.error if rec is not None else None)))
            if st.error:
                errors.append(f"stream {st.spec.stream_id}: {st.error}")
            if rec is not None and rec.error and rec.error != st.error:
                # reported live already ("stream " lines are not printed again) or only now (at close)
                errors.append(f"stream {st.spec.stream_id}: {rec.error}" if rec.error == st.record_error
                              else rec.error)
        return EngineReport(summaries=summaries, send_dropped=int(self.publisher.dropped), errors=errors,
                            warnings=warnings, stopped=self._stop.is_set())
