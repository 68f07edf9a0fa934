"""Minimal consumer: print every tracked instance the engine publishes.

    streamseg run --source synthetic:// --duration 60 &   # the demo engine, on tcp://127.0.0.1:5555
    python examples/print_tracks.py tcp://127.0.0.1:5555 --count 30

One line per frame, then one indented line per instance. Stops after --count frames or when every
stream it has heard from sent its end-of-stream message.
"""
import argparse

from streamseg.transport import Subscriber


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("address", help="engine publish address, e.g. tcp://127.0.0.1:5555")
    parser.add_argument("--count", type=int, default=0, help="stop after this many frames (0 = until EOS)")
    parser.add_argument("--timeout", type=float, default=10.0, help="give up after this many silent seconds")
    parser.add_argument("--curve", default=None, metavar="DIR",
                        help="CURVE client keys (client.key_secret, server.key) for a `run --curve` engine")
    args = parser.parse_args()

    frames, live_streams = 0, set()
    with Subscriber(args.address, curve=args.curve) as sub:
        while True:
            msg = sub.recv(timeout_ms=int(args.timeout * 1000))
            if msg is None:
                print("no message for", args.timeout, "s; giving up")
                break
            if msg.kind == "eos":
                print(f"eos stream={msg.stream} reason={msg.reason} last_seq={msg.seq}")
                live_streams.discard(msg.stream)
                if not live_streams:
                    break
                continue
            if msg.kind != "seg":
                continue
            live_streams.add(msg.stream)
            print(f"frame stream={msg.stream} seq={msg.seq} index={msg.frame_index} epoch={msg.epoch} "
                  f"instances={len(msg.instances)} age_ms={msg.age_ms():.1f}")
            for inst in msg.instances:
                x0, y0, x1, y1 = inst.box_xyxy
                print(f"  id={inst.id} label={inst.label} score={inst.score:.2f} "
                      f"box={x0:.0f},{y0:.0f},{x1:.0f},{y1:.0f} area={inst.area}")
            frames += 1
            if args.count and frames >= args.count:
                break


if __name__ == "__main__":
    main()
