"""``streamseg control ADDR OP [key=value ...]``: one request to a running engine, the reply as JSON."""
from __future__ import annotations

import argparse
import json
import sys


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("control", help="send one control request to a running engine (run --control ADDR)",
                       description="Send one control-protocol request and print the reply as JSON. "
                       "Values: names=person,car (list), box=x0,y0,x1,y1, points=x,y[,x,y...], "
                       "track_id=3; anything else is a string. Exit 0 when the reply is ok, 1 otherwise.")
    p.add_argument("address", metavar="ADDR", help="control address, e.g. tcp://127.0.0.1:5556")
    p.add_argument("op", metavar="OP", help="set_vocabulary, get_vocabulary, list_tracks, pause, resume, "
                   "add_source, remove_source, get_status, get_config, add_target, remove_target, list_targets")
    p.add_argument("fields", nargs="*", metavar="KEY=VALUE")
    p.add_argument("--timeout", type=float, default=10.0, metavar="S", help="wait this long for the reply")
    p.add_argument("--curve", default=None, metavar="DIR",
                   help="CURVE key folder (client.key_secret, server.key) for a `run --curve` engine")
    p.set_defaults(func=run_control)

    k = sub.add_parser("keys", help="CURVE keys for authenticated, encrypted publishing and control",
                       description="streamseg keys generate DIR: write zmq.auth certificates server.key, "
                       "server.key_secret, client.key, client.key_secret into DIR. Give DIR to "
                       "`run --curve`; give a copy holding client.key_secret and server.key to clients.")
    ksub = k.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    g = ksub.add_parser("generate", help="write a server and a client key pair")
    g.add_argument("folder", metavar="DIR")
    g.set_defaults(func=run_keys_generate)


def run_keys_generate(args: argparse.Namespace) -> int:
    from streamseg.transport.curve import generate_keys

    for path in generate_keys(args.folder):
        print(path)
    return 0


def parse_field(key: str, text: str):
    if key == "names":
        return [n.strip() for n in text.split(",") if n.strip()]
    if key == "box":
        return [float(v) for v in text.split(",")]
    if key == "points":
        vals = [float(v) for v in text.split(",")]
        return [vals[i:i + 2] for i in range(0, len(vals), 2)]
    if key == "track_id":
        return int(text)
    return text


def run_control(args: argparse.Namespace) -> int:
    from streamseg.control.client import Controller

    fields = {}
    for item in args.fields:
        key, sep, value = item.partition("=")
        if not sep or not key:
            print(f"streamseg: error: field {item!r} must look like key=value", file=sys.stderr)
            return 2
        try:
            fields[key] = parse_field(key, value)
        except ValueError:
            print(f"streamseg: error: field {key}: {value!r} is not a valid value", file=sys.stderr)
            return 2
    with Controller(args.address, timeout_s=args.timeout, curve=args.curve) as ctl:
        try:
            reply = ctl.request(args.op, **fields)
        except TimeoutError as exc:
            print(f"streamseg: error: {exc}", file=sys.stderr)
            return 1
    print(json.dumps(reply, default=str))
    if not reply.get("ok"):
        print(f"streamseg: error: {reply.get('error')}", file=sys.stderr)
        return 1
    return 0
