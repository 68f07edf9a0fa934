"""Engine settings (transport, recording, status; how sources open and reconnect is the ``source`` section). Owned by the engine package."""
from __future__ import annotations

from dataclasses import dataclass

from streamseg.config_checks import require

_C_INT_MAX = 2**31 - 1


@dataclass
class EngineConfig:
    publish: str = "tcp://127.0.0.1:5555"
    send_hwm: int = 8  # ZeroMQ high-water mark (messages): publishing never blocks past it
    status_hz: float = 1.0
    record_codec: str = "libx264"  # PyAV video encoder for --record (checked before the run)
    record_fps: float = 0.0  # nominal rate of the recording (frames keep capture time / pts); 0 = the source's
    record_fragment_s: float = 1.0  # a keyframe and file fragment this often: what a killed engine loses at most
    record_on_error: str = "stop"  # recording fails mid-run: stop (the stream ends with an error) or continue
    record_queue: int = 8  # frames buffered for the recorder thread (inference waits when it is full)
    mask_alpha: float = 0.45  # overlay: opacity of the coloured masks
    linger_ms: int = 200  # on shutdown, how long queued messages (EOS) may take to leave
    shutdown_timeout_s: float = 1.5  # how long to wait for reader threads at the end

    def validate(self) -> None:
        from streamseg.transport.address import check_endpoint

        check_endpoint(self.publish, "publish")
        require(self.send_hwm >= 1, "send_hwm must be >= 1")
        require(self.send_hwm <= _C_INT_MAX, f"send_hwm must be <= {_C_INT_MAX} (ZeroMQ takes a C int)")
        require(self.status_hz > 0, "status_hz must be > 0")
        require(bool(self.record_codec), "record_codec must not be empty")
        require(self.record_fps >= 0, "record_fps must be >= 0")
        require(self.record_queue >= 1, "record_queue must be >= 1")
        require(0 < self.record_fragment_s <= 60, "record_fragment_s must be in (0, 60]")
        require(self.record_on_error in ("stop", "continue"), "record_on_error must be stop or continue")
        require(0.0 <= self.mask_alpha <= 1.0, "mask_alpha must be in [0, 1]")
        require(self.linger_ms >= 0, "linger_ms must be >= 0")
        require(self.linger_ms <= _C_INT_MAX, f"linger_ms must be <= {_C_INT_MAX} (ZeroMQ takes a C int)")
        require(self.shutdown_timeout_s > 0, "shutdown_timeout_s must be > 0")
