"""The commands that talk to the cluster: status (and -w), history, promote, abort.

Each reads the ModelDeployment once through kubeapi, hands the dict to a pure
module (status_view, requests) and prints what comes back.
"""
from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from typing import IO

from . import kubeapi
from .errors import NOT_FOUND, OK, CliError
from .requests import pending, plan_request
from .status_view import Style, render_history, render_status
from ..status.transitions import format_time

CONFLICT_RETRIES = 3
# While watching at a terminal, redraw this often so countdowns (pause end,
# next analysis) stay true between changes of the object.
TICK_SECONDS = 1.0
_CLEAR = "\x1b[H\x1b[2J"


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def style_for(out: IO[str]) -> Style:
    """Colour for a terminal only; https://no-color.org and TERM=dumb turn it off."""
    tty = hasattr(out, "isatty") and out.isatty()
    return Style(colour=tty and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb")


def status(cluster: kubeapi.Cluster, namespace: str, name: str, out: IO[str]) -> int:
    md = kubeapi.get_model(cluster, namespace, name)
    out.write(render_status(md, utcnow(), style_for(out)))
    return OK


def history(cluster: kubeapi.Cluster, namespace: str, name: str, out: IO[str]) -> int:
    out.write(render_history(kubeapi.get_model(cluster, namespace, name)))
    return OK


def request(cluster: kubeapi.Cluster, namespace: str, name: str, action: str, out: IO[str], err: IO[str]) -> int:
    """Set the promote/abort annotation with a JSON merge patch.

    The patch carries the resourceVersion that was judged, so it lands only on
    the state plan_request saw (a 409 means: read again and judge again).
    """
    for attempt in range(CONFLICT_RETRIES):
        md = kubeapi.get_model(cluster, namespace, name)
        planned = plan_request(md, action)
        waiting = pending(md)
        patch = {"metadata": {"resourceVersion": md["metadata"]["resourceVersion"],
                              "annotations": {planned.annotation: planned.value}}}
        try:
            kubeapi.merge_patch(cluster, namespace, name, patch)
        except kubeapi.Conflict:
            if attempt == CONFLICT_RETRIES - 1:
                raise
            continue
        out.write(planned.announcement + "\n")
        if waiting:
            err.write(f"modeldeploy: note: {', '.join(waiting)} was already set and not yet consumed: "
                      "is the operator running?\n")
        return OK
    raise AssertionError("unreachable")


def watch(cluster: kubeapi.Cluster, namespace: str, name: str, out: IO[str],
          now: Callable[[], datetime] = utcnow) -> int:
    """Print the view, then again on every change of the object until Ctrl-C (exit 0).

    At a terminal the screen is redrawn in place (and every second, for the
    countdowns); piped, each change appends a full view after a `---` line,
    so a log of the output reads as a history of the rollout.
    """
    style = style_for(out)
    in_place = hasattr(out, "isatty") and out.isatty()
    md = kubeapi.get_model(cluster, namespace, name)  # a missing object fails now, with exit 3
    events: queue.Queue = queue.Queue()
    threading.Thread(target=_follow, args=(cluster, namespace, name, md, events), daemon=True).start()
    shown_version, shown_text = None, None
    try:
        while True:
            if md is not None:
                text = render_status(md, now(), style)
                version = md["metadata"].get("resourceVersion")
                if in_place and text != shown_text:
                    out.write(f"{_CLEAR}{text}\nwatching {namespace}/{name}; Ctrl-C exits\n")
                elif not in_place and version != shown_version:
                    out.write(text if shown_version is None else f"--- {format_time(now())}\n{text}")
                out.flush()
                shown_version, shown_text = version, text
            try:
                kind, obj = events.get(timeout=TICK_SECONDS)
            except queue.Empty:
                continue
            if kind == "error":
                raise obj
            if kind == "DELETED":
                out.write(f"--- {format_time(now())}\n{name} was deleted; watching for it to come back\n")
                out.flush()
                md, shown_version = None, None
            else:
                md = obj
    except KeyboardInterrupt:
        return OK


def _follow(cluster, namespace: str, name: str, md: dict | None, events: queue.Queue) -> None:
    """Feed watch events into `events` for ever, resuming after the server
    ends a watch; a resourceVersion too old for the server lists again."""
    version = md["metadata"]["resourceVersion"] if md else ""
    while True:
        try:
            for kind, obj in kubeapi.watch_model(cluster, namespace, name, version):
                version = obj["metadata"].get("resourceVersion", version)
                events.put((kind, obj))
        except kubeapi.WatchExpired:
            try:
                fresh = kubeapi.get_model(cluster, namespace, name)
            except CliError as error:
                if error.code != NOT_FOUND:
                    events.put(("error", error))
                    return
                version = ""
            else:
                version = fresh["metadata"]["resourceVersion"]
                events.put(("MODIFIED", fresh))
        except CliError as error:
            events.put(("error", error))
            return

