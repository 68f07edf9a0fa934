"""``streamseg proxy --xsub ADDR --xpub ADDR``: many engines in, many subscribers out."""
from __future__ import annotations

import argparse
import signal
import sys
import threading


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("proxy", help="ZeroMQ XSUB/XPUB proxy: many engines publish into one address",
                       description="Bind an XSUB socket that engines publish into (`run --publish "
                       "'>tcp://HOST:PORT'`: the leading '>' makes the engine connect instead of bind) and an "
                       "XPUB socket that subscribers connect to. ZeroMQ's own zmq.proxy forwards both ways.")
    p.add_argument("--xsub", required=True, metavar="ADDR", help="where engines connect, e.g. tcp://127.0.0.1:6000")
    p.add_argument("--xpub", required=True, metavar="ADDR", help="where subscribers connect, e.g. tcp://127.0.0.1:6001")
    p.add_argument("--curve", default=None, metavar="DIR", help="CURVE keys: both sides admit only DIR's public keys")
    p.add_argument("--metrics", type=int, default=None, metavar="PORT", help="Prometheus /metrics and /healthz")
    p.set_defaults(func=run_proxy)


def run_proxy(args: argparse.Namespace) -> int:
    from streamseg.transport.proxy import Proxy

    curve = None
    if args.curve:
        from streamseg.transport.curve import CurveServer

        curve = CurveServer(args.curve)
    proxy = Proxy(args.xsub, args.xpub, curve=curve).start()
    server = None
    if args.metrics is not None:
        from streamseg.engine.metrics import MetricsServer, ProxyMetrics

        server = MetricsServer(ProxyMetrics(proxy).registry, args.metrics).start()
    print(f"streamseg: proxy {proxy.xsub_address} -> {proxy.xpub_address}", file=sys.stderr, flush=True)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    proxy.close()
    if server is not None:
        server.close()
    if curve is not None:
        curve.close()
    return 0
