"""Errors a user can act on: each carries a one-line message naming the problem.

The CLI prints ``streamseg: error: <message>`` and exits non-zero for any of these; anything else
is a bug and keeps its traceback.
"""


class StreamsegError(Exception):
    """Base of every user-facing error."""


class ConfigError(StreamsegError):
    """A config file, key or value is wrong."""


class SourceError(StreamsegError):
    """A video source cannot be opened or read (missing file, dead URL, no device, corrupt data)."""


class CheckpointError(StreamsegError):
    """A checkpoint is missing, unreadable, or does not fit the config."""


class ProtocolError(StreamsegError):
    """A message on the wire does not follow protocol v1."""
