"""Robot-side consumer: follow the largest instance of one class.

    streamseg run --source synthetic:// --max-frames 40 --wait-subscribers 1 &  # the demo engine, on tcp://127.0.0.1:5555
    python examples/follow_class.py tcp://127.0.0.1:5555 --label disk

(``--wait-subscribers 1``: the engine holds its first frame until this consumer has subscribed, so
a short demo run is not over before the consumer starts.)

Always works on the newest frame (drain-to-latest: a slow robot loop never lags behind the
camera). For each frame it prints the target's track id, centroid, box and the message's age in
ms, or "lost". It resets its target when the stream's epoch changes (the source reconnected:
motion across the gap is meaningless) and stops on end-of-stream.
"""
import argparse

import numpy as np

from streamseg.transport import Subscriber


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("address", help="engine publish address, e.g. tcp://127.0.0.1:5555")
    parser.add_argument("--label", default="disk", help="class to follow")
    parser.add_argument("--count", type=int, default=0, help="stop after this many frames (0 = until EOS)")
    parser.add_argument("--timeout", type=float, default=10.0, help="give up after this many silent seconds")
    parser.add_argument("--curve", default=None, metavar="DIR",
                        help="CURVE client keys (client.key_secret, server.key) for a `run --curve` engine")
    args = parser.parse_args()

    frames, target = 0, None
    with Subscriber(args.address, topics=("seg/", "eos/"), curve=args.curve) as sub:
        while not args.count or frames < args.count:
            msg = sub.recv_latest(timeout_ms=int(args.timeout * 1000))
            if msg is None:
                print("no message; stopping")
                break
            if msg.kind == "eos":
                print(f"eos stream={msg.stream} reason={msg.reason}: stopping")
                break
            if msg.epoch_changed:
                print(f"epoch {msg.epoch}: source reconnected, resetting target")
                target = None
            frames += 1
            candidates = [i for i in msg.instances if i.label == args.label]
            if not candidates:
                print(f"frame {msg.frame_index}: {args.label} lost")
                continue
            best = max(candidates, key=lambda i: i.area)
            ys, xs = np.nonzero(best.crop)
            x, y = best.mask_box[0] + xs.mean(), best.mask_box[1] + ys.mean()
            switched = " (new target)" if best.id != target else ""
            target = best.id
            x0, y0, x1, y1 = best.box_xyxy
            print(f"frame {msg.frame_index}: follow id={best.id}{switched} centroid={x:.1f},{y:.1f} "
                  f"box={x0:.0f},{y0:.0f},{x1:.0f},{y1:.0f} area={best.area} age_ms={msg.age_ms():.1f}")


if __name__ == "__main__":
    main()
