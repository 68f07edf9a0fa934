"""``--metrics PORT``: a Prometheus endpoint (prometheus_client) and ``/healthz``.

Counters and gauges are read from the engine at scrape time (a custom collector: nothing on the
hot path); stage latencies go into histograms as the engine records them. One registry per
engine, no global state.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Histogram, make_wsgi_app
from prometheus_client.core import CounterMetricFamily

BUCKETS_MS = (0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)


class EngineMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.latency = Histogram("streamseg_stage_latency_ms", "Per-frame time of each pipeline stage (ms)",
                                 ["stream", "stage"], buckets=BUCKETS_MS, registry=self.registry)
        self._engine: Any = None

    def attach(self, engine: Any) -> None:
        """Read the engine's counters at scrape time."""
        self._engine = engine
        self.registry.register(_EngineCollector(engine))

    def observe(self, stream: str, stage: str, ms: float) -> None:
        self.latency.labels(stream, stage).observe(ms)


class _EngineCollector:
    def __init__(self, engine: Any) -> None:
        self.engine = engine

    def collect(self) -> Iterable[Any]:
        frames_in = CounterMetricFamily("streamseg_frames_in", "Frames read from the source", labels=["stream"])
        frames_out = CounterMetricFamily("streamseg_frames_out", "Frames segmented and published",
                                         labels=["stream"])
        drops = CounterMetricFamily("streamseg_frames_dropped", "Frames replaced in the latest-frame slot",
                                    labels=["stream"])
        reconnects = CounterMetricFamily("streamseg_reconnects", "Source reconnects (epoch)", labels=["stream"])
        wire = CounterMetricFamily("streamseg_publish_dropped", "Messages dropped at the high-water mark")
        for s in self.engine.statuses():
            frames_in.add_metric([s.stream], s.frames_in)
            frames_out.add_metric([s.stream], s.frames_out)
            drops.add_metric([s.stream], s.dropped)
            reconnects.add_metric([s.stream], s.epoch)
        wire.add_metric([], int(self.engine.publisher.dropped))
        yield from (frames_in, frames_out, drops, reconnects, wire)


class ProxyMetrics:
    def __init__(self, proxy: Any, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.registry.register(_ProxyCollector(proxy))


class _ProxyCollector:
    def __init__(self, proxy: Any) -> None:
        self.proxy = proxy

    def collect(self) -> Iterable[Any]:
        m = CounterMetricFamily("streamseg_proxy_forwarded", "Messages forwarded engines -> subscribers")
        m.add_metric([], self.proxy.forwarded)
        yield m


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:  # no access log on stderr
        pass


class MetricsServer:
    """Serves ``/metrics`` (Prometheus text) and ``/healthz`` (200 "ok" while healthy()) on a port."""

    def __init__(self, registry: CollectorRegistry, port: int, host: str = "127.0.0.1",
                 healthy: Callable[[], bool] = lambda: True) -> None:
        metrics_app = make_wsgi_app(registry)

        def app(environ: dict, start_response: Callable) -> list[bytes]:
            if environ.get("PATH_INFO") == "/healthz":
                ok = healthy()
                start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "text/plain")])
                return [b"ok\n" if ok else b"unhealthy\n"]
            return metrics_app(environ, start_response)

        self._server: WSGIServer = make_server(host, port, app, handler_class=_Quiet)
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="metrics")

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
