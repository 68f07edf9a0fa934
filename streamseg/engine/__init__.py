"""The streaming engine: latest-frame slots, the pipeline (Engine), stage timings, status, overlay
recording, the ``run`` command, and the GroundTruthSegmenter test double.

Kept import-light (the CLI imports ``streamseg.engine.commands``); import ``Engine`` from
``streamseg.engine.pipeline``.
"""
