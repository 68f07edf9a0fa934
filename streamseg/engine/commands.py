"""``streamseg run``: sources in, tracked instance masks out on ZeroMQ (+ optional overlay MP4)."""
from __future__ import annotations

import argparse

from streamseg.predictor.model_choice import MODEL_HELP

RUN_EPILOG = """\
streams:
  Each --source is one stream, processed by the same segmenter with its own state. Stream ids are
  "0", "1", ... in --source order, unless --stream-id is given once per --source (same order).
  Topics on the wire: seg/<id>, status/<id>, eos/<id>.

recording:
  --record out.mp4 (.mov, .mkv) writes the overlay of a single stream to out.mp4; with several
  streams, stream <id> is written to out-<id>.mp4. The file stays playable if the engine is killed
  (fragmented MP4 / Matroska clusters, a keyframe every engine.record_fragment_s = 1 s: SIGKILL loses
  about the last second). Live frames are timed by capture time, file frames keep their pts. A bad
  target or encoder is refused before the run; a failure mid-run (disk full) is printed at once and
  sent as the stream's status "error", then the stream ends (engine.record_on_error=stop, default)
  or goes on unrecorded (=continue); the exit status is 2 either way.

stage timings (status messages every 1/engine.status_hz s, and the summary; p50/p95 in ms):
  decode              the source producing the frame (files: wall time; live: reader CPU time)
  slot_wait           from the reader handing the frame over to inference taking it
  preprocess, segment, postprocess   inside Segmenter.step (pre/post when the segmenter reports them)
  encode, publish     protocol-v1 encoding (crop RLE + msgpack) and the non-blocking send
  capture_to_publish  from the frame's capture stamp to the message being sent
  record              queueing the frame for the overlay writer (--record)
  overhead            everything the engine spends on a frame except Segmenter.step (wall time)
  overhead_cpu        the same in CPU time of the inference thread (excludes waiting for a CPU)
  segmenter.<name>    component times the segmenter reports itself (Tracks.timings_ms)

sources (URI forms):
  path/to/file.mp4 or file://...      every frame is processed (none dropped) unless --realtime
  rtsp://host:port/path                live, reconnects after a loss (epoch increments)
  camera:/dev/video0?width=&height=&fps=
  synthetic://?seed=&fps=&width=&height=&instances=   scene with known ground truth (fps=0: not live)
  testsrc://?width=&height=&fps=&pattern=

exit status: 0 when every stream ended or was stopped cleanly; 2 on a bad input, when any stream
failed (its EOS carries reason "error"; the other streams keep running) or a recording failed. SIGINT/SIGTERM send EOS on
every stream, finalise the recording and exit.
"""


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run", help="segment and track live video, publish masks over ZeroMQ",
        description="Read one or more video sources, segment and track every instance frame by "
        "frame, and publish protocol-v1 messages on a ZeroMQ PUB (XPUB) socket.",
        epilog=RUN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", action="append", required=True, metavar="URI",
                   help="video source URI (repeat for several streams)")
    p.add_argument("--stream-id", action="append", default=None, metavar="NAME",
                   help="name of the stream for the --source at the same position (repeat; default 0, 1, ...)")
    p.add_argument("--config", default=None, metavar="NAME|FILE",
                   help="YAML config, a file or a shipped config's name (default: cpu-mobilenet, the shipped "
                   "CPU model; with --checkpoint of an imported model: the config it carries)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                   help="override one config field, e.g. --set engine.status_hz=2 (repeatable)")
    p.add_argument("--publish", default=None, metavar="ADDR",
                   help="ZeroMQ PUB bind address (default: engine.publish = tcp://127.0.0.1:5555)")
    p.add_argument("--control", default=None, metavar="ADDR",
                   help="bind a control socket (ZeroMQ ROUTER; docs/protocol.md) to steer the running engine: "
                   "vocabulary, pause/resume, add/remove sources, status")
    p.add_argument("--curve", default=None, metavar="DIR",
                   help="CURVE keys from `streamseg keys generate DIR`: the PUB and control sockets admit "
                   "only the public keys in DIR and encrypt everything")
    p.add_argument("--metrics", type=int, default=None, metavar="PORT",
                   help="serve Prometheus metrics on http://127.0.0.1:PORT/metrics (frames in/out, drops, "
                   "reconnects, stage latency histograms) and /healthz")
    p.add_argument("--record", default=None, metavar="OUT.mp4",
                   help="write an overlay video (.mp4/.mov/.mkv: masks, ids, labels, scores) that survives a kill")
    p.add_argument("--save-json", default=None, metavar="FILE",
                   help="write YouTube-VIS results (one video per stream; what `streamseg eval-json` reads), "
                   "each track's tube written when it ends or at the stream's end")
    p.add_argument("--save-rle", default=None, metavar="FILE",
                   help="write a JSON-lines log of every instance of every frame (stream, frame_index, id, "
                   "label, score, box_xyxy, mask_box, COCO RLE counts of the crop), flushed every frame")
    p.add_argument("--max-frames", type=int, default=None, metavar="N",
                   help="end each stream after N processed frames")
    p.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds")
    p.add_argument("--realtime", action="store_true",
                   help="pace file sources to their frame rate and drop frames like a live source")
    p.add_argument("--loop", action="store_true", help="restart file sources at their end")
    p.add_argument("--wait-subscribers", type=int, default=0, metavar="N",
                   help="before the first frame, wait until N subscribers have subscribed to every stream's "
                   "seg messages, so a file run's frame 0 reaches subscribers that are already waiting "
                   "(ZeroMQ's slow joiner; docs/protocol.md)")
    p.add_argument("--wait-timeout", type=float, default=30.0, metavar="S",
                   help="with --wait-subscribers: give up (exit 2, nothing processed) after S seconds (default 30)")
    p.add_argument("--segmenter", choices=("model", "ground-truth"), default="model",
                   help="model: the trained segmenter (default); ground-truth: a test double that "
                   "replays the synthetic scene's known masks (synthetic:// sources only)")
    p.add_argument("--vocab", default=None, metavar="FILE",
                   help="vocabulary file from `streamseg vocab build` (model segmenter; default: the "
                   "config's vocabulary section, else the checkpoint's)")
    p.add_argument("--names", default=None, metavar="A,B,...",
                   help="the vocabulary as a comma list, e.g. --names person,car (embedded with the text "
                   "encoder the checkpoint was trained with; instead of --vocab / vocabulary.names)")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N")
    p.add_argument("--checkpoint", default=None, metavar="FILE",
                   help="model weights (default: the config's checkpoint)")
    p.add_argument("--model", default=None, metavar="NAME", help=MODEL_HELP)
    p.add_argument("--untrained", action="store_true",
                   help="allow a model with no checkpoint (random weights; it finds nothing useful), e.g. "
                   "with --config tiny-test for plumbing tests")
    p.add_argument("--quiet", action="store_true", help="no start-up line, live status line or summary (errors are still printed)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from streamseg.engine.run import run_command

    return run_command(args)
