"""`markfs stats MOUNTPOINT`: the daemon's counters (/.markfs/metrics of the mount) as a
live, refreshing terminal view — requests, bytes per source, the content cache,
uploads, listings, scan jobs — like `juicefs stats`; `--once` prints the totals."""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from pathlib import Path

import click

from markfs.cli.common import human_size
from markfs.errors import UserError
from markfs.fs.shares import markfs_mount_at

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
CLEAR = "\x1b[H\x1b[2J"


def read_samples(mountpoint: Path) -> Samples:
    from prometheus_client.parser import text_string_to_metric_families  # (only for stats)

    if not (mountpoint / ".markfs").is_dir():
        raise UserError(f"{mountpoint} shows a subtree (--root): the counters live in the "
                        "whole tree's /.markfs; run this on a mount of the whole tree, or "
                        "scrape [metrics] listen")
    try:
        text = (mountpoint / ".markfs" / "metrics").read_text()
    except OSError as exc:
        raise UserError(f"cannot read {mountpoint}/.markfs/metrics: {exc.strerror}") from None
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def by_label(samples: Samples, name: str, label: str) -> dict[str, float]:
    found: dict[str, float] = defaultdict(float)
    for (sample, labels), value in samples.items():
        if sample == name:
            found[dict(labels).get(label, "")] += value
    return found


def total(samples: Samples, name: str) -> float:
    return sum(v for (sample, _labels), v in samples.items() if sample == name)



def render(now: Samples, before: Samples | None, seconds: float) -> list[str]:
    """The view: rates over `seconds` since `before`, or totals when there is none."""
    def change(name: str, label: str | None = None) -> dict[str, float]:
        current = by_label(now, name, label) if label else {"": total(now, name)}
        if before is None:
            return current
        old = by_label(before, name, label) if label else {"": total(before, name)}
        return {k: (v - old.get(k, 0.0)) / seconds for k, v in current.items()}

    per = "/s" if before is not None else ""
    counts, spent = change("markfs_fuse_request_seconds_count", "op"), \
        change("markfs_fuse_request_seconds_sum", "op")
    lines = [f"{'request':<14}{'count' + per:>12}{'avg ms':>10}"]
    busiest = sorted(((op, n) for op, n in counts.items() if n > 0), key=lambda kv: -kv[1])
    for op, count in busiest[:8]:
        avg = spent.get(op, 0.0) / count * 1000 if count else 0.0
        lines.append(f"{op:<14}{count:>12.0f}{avg:>10.2f}")
    read, written = change("markfs_read_bytes_total", "source"), \
        change("markfs_written_bytes_total", "source")
    lines.append(f"{'source':<14}{'read' + per:>12}{'written' + per:>14}")
    for source in sorted(set(read) | set(written)):
        lines.append(f"{source or '(mount)':<14}{human_size(read.get(source, 0)):>12}"
                     f"{human_size(written.get(source, 0)):>14}")
    hits, misses = change("markfs_cache_hits_total")[""], change("markfs_cache_misses_total")[""]
    lines.append(f"cache: {hits:.0f} hits{per}, {misses:.0f} misses{per}, "
                 f"{human_size(total(now, 'markfs_cache_bytes'))} held")
    lines.append(f"uploads: {total(now, 'markfs_uploads_pending'):.0f} pending "
                 f"({human_size(total(now, 'markfs_uploads_pending_bytes'))}), "
                 f"{change('markfs_uploads_total')['']:.0f} done{per}, "
                 f"{total(now, 'markfs_upload_retries_total'):.0f} retries, "
                 f"{total(now, 'markfs_upload_failures_total'):.0f} parked")
    jobs = by_label(now, "markfs_scan_jobs", "state")
    lines.append(f"listings: {sum(change('markfs_listing_requests_total', 'source').values()):.0f}"
                 f"{per}; scan jobs running: {jobs.get('running', 0):.0f}; stale tables: "
                 f"{total(now, 'markfs_stale_tables'):.0f}")
    return lines


@click.command()
@click.argument("mountpoint", type=click.Path(path_type=Path))
@click.option("--once", is_flag=True, help="Print the totals once and exit (for scripts).")
@click.option("--interval", default=1.0, show_default=True, help="Seconds between refreshes.")
def stats(mountpoint: Path, once: bool, interval: float) -> None:
    """Live counters of a mounted markfs: requests, bytes per source, cache, uploads."""
    mount = markfs_mount_at(mountpoint)
    before, taken = read_samples(mount.mountpoint), time.monotonic()
    if once:
        click.echo("\n".join(render(before, None, 0.0)))
        return
    try:
        while True:
            time.sleep(max(interval, 0.1))
            now, at = read_samples(mount.mountpoint), time.monotonic()
            view = render(now, before, at - taken)
            header = f"markfs {mount.mountpoint}: every {interval:g} s (Ctrl-C ends)"
            click.echo((CLEAR if sys.stdout.isatty() else "\n") + "\n".join([header, *view]))
            before, taken = now, at
    except KeyboardInterrupt:
        pass
