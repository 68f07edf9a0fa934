"""Bounds a decoder puts on untrusted messages before allocating anything for them.

A 200-byte header can claim a 65536x65536 frame; without bounds a subscriber would allocate
gigabytes decoding its masks. The defaults admit every real camera (8K UHD is 33 Mpx) and keep
the worst accepted message to a few hundred MB of transient memory; raise them deliberately.
"""
from __future__ import annotations

from dataclasses import dataclass

from streamseg.errors import ConfigError

INT64_MAX = 2**63 - 1


@dataclass(frozen=True)
class ProtocolLimits:
    max_side: int = 16384  # frame width or height, pixels
    max_pixels: int = 7680 * 4320  # frame area (and so any mask box), pixels: 8K UHD
    max_instances: int = 1024  # instances in one seg message
    max_part_bytes: int = 1024 * 1024  # one mask part or header (a 1080p full-frame mask is ~10-100 KB); also the Subscriber's ZMQ_MAXMSGSIZE
    max_names: int = 65536  # vocabulary names in one header
    max_seq_gap: int = 10_000_000  # a forward seq jump larger than this is a restart, not loss

    def __post_init__(self) -> None:
        for name in ("max_side", "max_pixels", "max_instances", "max_part_bytes", "max_names", "max_seq_gap"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"protocol limit {name} must be a positive integer, got {value!r}")


DEFAULT_LIMITS = ProtocolLimits()
