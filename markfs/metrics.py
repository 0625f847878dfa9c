"""The daemon's counters in Prometheus' model (prometheus-client, on a registry of this
process's own): FUSE requests by operation with latency histograms, bytes read and
written per source, calls handed to worker threads by function, content-cache hits
and misses and its size, pending uploads,
upload retries and failures, listing requests, scan jobs, stale tables, a shared
catalog's feed and its calls past their deadline, and the process's own CPU and memory.

Counters are bumped where things happen (in the layers that do them); gauges that
are answers of the catalog are set by the mount's loop once a second
(`fs.mount`), never from the HTTP server's thread, which must not touch the
catalog connection. Served at `[metrics] listen` and as /.markfs/metrics.
"""

from __future__ import annotations

import errno

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
    start_http_server,
)

from markfs.errors import UserError

# FUSE answers take tens of µs (the catalog) to seconds (a cold remote read)
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                   0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        ProcessCollector(registry=r)
        self.fuse_seconds = Histogram(
            "markfs_fuse_request_seconds", "FUSE requests answered, by operation",
            ["op"], buckets=LATENCY_BUCKETS, registry=r)
        self.fuse_errors = Counter(
            "markfs_fuse_errors", "FUSE requests answered with an error, by operation and "
            "errno name", ["op", "error"], registry=r)
        self.read_bytes = Counter("markfs_read_bytes", "Bytes read through the mount, by "
                                  "source", ["source"], registry=r)
        self.written_bytes = Counter("markfs_written_bytes", "Bytes written through the "
                                     "mount, by source", ["source"], registry=r)
        self.cache_hits = Counter("markfs_cache_hits", "Reads of remote files answered "
                                  "from the content cache (or chunks still in memory)",
                                  registry=r)
        self.cache_misses = Counter("markfs_cache_misses", "Reads of remote files that "
                                    "waited for their source", registry=r)
        self.cache_bytes = Gauge("markfs_cache_bytes", "Bytes in the content cache", registry=r)
        self.uploads_pending = Gauge("markfs_uploads_pending", "Files this daemon still has "
                                     "to write back to their sources", registry=r)
        self.uploads_pending_bytes = Gauge("markfs_uploads_pending_bytes", "Bytes of those "
                                           "files", registry=r)
        self.uploads = Counter("markfs_uploads", "Files written back to their sources",
                               registry=r)
        self.upload_retries = Counter("markfs_upload_retries", "Upload attempts that failed "
                                      "and will be tried again", registry=r)
        self.upload_failures = Counter("markfs_upload_failures", "Uploads parked: they can "
                                       "never succeed as they are (markfs status)", registry=r)
        self.thread_hops = Counter(
            "markfs_thread_hops", "Calls handed to a worker thread (each costs a hop of "
            "40-110 us here), by the function called", ["fn"], registry=r)
        self.listings = Counter("markfs_listing_requests", "Folder listings asked of "
                                "sources, by source", ["source"], registry=r)
        self.watched_sources = Gauge(
            "markfs_watched_sources", "Local sources whose every outside change the "
            "watcher reports (0 after lost events: listings expire by dir_ttl)", registry=r)
        self.scan_jobs = Gauge("markfs_scan_jobs", "Scan and refresh jobs in the catalog's "
                               "log, by state", ["state"], registry=r)
        self.stale_tables = Gauge("markfs_stale_tables", "Managed tables whose snapshot is "
                                  "older than their source's last scan", registry=r)
        self.feed_reads = Counter("markfs_feed_reads", "Reads of a shared catalog's change "
                                  "log that brought other hosts' commits", registry=r)
        self.feed_read_seconds = Histogram(
            "markfs_feed_read_seconds", "Time to read and apply other hosts' commits",
            registry=r, buckets=(0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0))
        self.feed_behind = Gauge("markfs_feed_behind", "Commits of other hosts this host "
                                 "had not applied when it last read the log", registry=r)
        self.feed_failures = Counter("markfs_feed_failures", "Times the change feed lost "
                                     "its connection to the catalog and reconnected",
                                     registry=r)
        self.catalog_timeouts = Counter(
            "markfs_catalog_timeouts", "Catalog calls past io_timeout, answered EIO (the "
            "catalog's server stalled, or a write waited for another host's lock), by "
            "kind: write, read", ["kind"], registry=r)
        self.catalog_retries = Counter(
            "markfs_catalog_retries", "Write transactions the catalog's server ended to let "
            "another go on (a deadlock, a serialization failure), run again", registry=r)

    def text(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)

    def serve(self, listen: str) -> None:
        """An HTTP endpoint for Prometheus at HOST:PORT (its own thread)."""
        host, _, port = listen.rpartition(":")
        if not host or not port.isdigit():
            raise UserError(f"metrics.listen must be HOST:PORT, not {listen!r}")
        try:
            start_http_server(int(port), addr=host.strip("[]"), registry=self.registry)
        except OSError as exc:
            reason = "in use" if exc.errno == errno.EADDRINUSE else exc.strerror
            raise UserError(f"cannot serve metrics on {listen}: address {reason}") from None


METRICS = Metrics()  # this process's: a mount's daemon has one namespace
