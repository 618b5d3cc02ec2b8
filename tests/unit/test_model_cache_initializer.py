"""The storage initializer's model cache (spec.model.cache): the entrypoint's
fetch() as plain functions, with a fake download in place of kserve-storage.
Two pods at once download a URI once and both get the files; a pod killed
mid-download leaves no entry, and the next one downloads afresh. No network,
no cluster."""

import importlib.machinery
import importlib.util
import multiprocessing
import os
import signal
import sys
import time
from pathlib import Path

import pytest

ENTRYPOINT = Path(__file__).resolve().parents[2] / "hack" / "images" / "storage-initializer" / "initializer-entrypoint"
URI = "s3://models/fraud/v7"


def _load():
    name = "modeldeploy_initializer_entrypoint_for_cache"
    if name in sys.modules:
        return sys.modules[name]
    loader = importlib.machinery.SourceFileLoader(name, str(ENTRYPOINT))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(name, loader))
    sys.modules[name] = module
    loader.exec_module(module)
    return module


entrypoint = _load()


def fake_download(log: Path, hold=None):
    """Writes two files the way Storage.download fills a directory, after
    noting the call in `log` (one line per download, from any process)."""

    def download(uri: str, directory: str) -> None:
        with open(log, "a") as out:
            out.write(f"{os.getpid()} {uri}\n")
        Path(directory, "model.joblib").write_bytes(b"weights of " + uri.encode())
        if hold is not None:
            hold()
        Path(directory, "model-settings.json").write_text("{}")

    return download


def downloads(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def test_a_miss_downloads_into_the_cache_and_a_hit_copies_without_downloading(tmp_path):
    cache, log = tmp_path / "cache", tmp_path / "downloads.log"
    cache.mkdir()
    first = entrypoint.fetch(URI, tmp_path / "pod-1", cache, fake_download(log), env={})
    second = entrypoint.fetch(URI, tmp_path / "pod-2", cache, fake_download(log), env={})
    assert (first, second) == ("miss", "hit")
    assert downloads(log) == 1
    for pod in ("pod-1", "pod-2"):
        assert (tmp_path / pod / "model.joblib").read_bytes() == b"weights of " + URI.encode()
        assert (tmp_path / pod / "model-settings.json").exists()
    key = entrypoint.cache_key(URI)
    assert sorted(p.name for p in cache.iterdir()) == [key, key + ".lock"]


def test_the_key_is_the_sha256_of_the_uri_and_of_the_s3_endpoint_it_comes_from(tmp_path):
    import hashlib

    assert entrypoint.cache_key(entrypoint.resolved_uri(URI, {})) == hashlib.sha256(URI.encode()).hexdigest()
    here = entrypoint.resolved_uri(URI, {"AWS_ENDPOINT_URL": "http://minio-a:9000"})
    there = entrypoint.resolved_uri(URI, {"S3_ENDPOINT": "minio-b:9000"})
    assert len({URI, here, there}) == 3
    assert entrypoint.resolved_uri("https://example.com/m.onnx", {"AWS_ENDPOINT_URL": "http://x"}) == \
        "https://example.com/m.onnx"


def lock_waiters(lock: Path) -> int:
    """Processes waiting for a flock on `lock` (Linux: the "->" lines of /proc/locks)."""
    inode = f":{lock.stat().st_ino} "
    return sum(1 for line in Path("/proc/locks").read_text().splitlines() if "->" in line and inode in line)


def _fetch_in_process(uri, dest, cache, log, start, results):
    lock = Path(cache, entrypoint.cache_key(uri) + entrypoint.LOCK_SUFFIX)

    def hold():
        # The downloader finishes only once the other process waits for the
        # lock: the two overlap for certain, whatever the machine's load.
        deadline = time.monotonic() + 30
        while not lock_waiters(lock):
            assert time.monotonic() < deadline, "the second process never waited for the lock"
            os.sched_yield()

    start.wait()  # both processes reach fetch() together
    results.put((dest, entrypoint.fetch(uri, dest, cache, fake_download(Path(log), hold), env={})))


def test_two_pods_at_once_download_the_uri_once_and_both_get_the_files(tmp_path):
    cache, log = tmp_path / "cache", tmp_path / "downloads.log"
    cache.mkdir()
    ctx = multiprocessing.get_context("fork")
    start, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_fetch_in_process, args=(URI, str(tmp_path / f"pod-{i}"), str(cache), str(log), start,
                                                          results)) for i in (1, 2)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    outcome = dict(results.get(timeout=5) for _ in procs)
    assert sorted(outcome.values()) == ["hit", "miss"], outcome
    assert downloads(log) == 1, log.read_text()
    for i in (1, 2):
        assert (tmp_path / f"pod-{i}" / "model-settings.json").exists()
        assert (tmp_path / f"pod-{i}" / "model.joblib").read_bytes() == b"weights of " + URI.encode()


def _killed_mid_download(uri, cache, log, halfway):
    def hold():
        halfway.set()
        signal.pause()  # until SIGKILL

    entrypoint.fetch(uri, "/nonexistent-never-reached", cache, fake_download(Path(log), hold), env={})


def test_a_pod_killed_mid_download_leaves_no_entry_and_the_next_downloads_afresh(tmp_path):
    cache, log = tmp_path / "cache", tmp_path / "downloads.log"
    cache.mkdir()
    ctx = multiprocessing.get_context("fork")
    halfway = ctx.Event()
    proc = ctx.Process(target=_killed_mid_download, args=(URI, str(cache), str(log), halfway))
    proc.start()
    assert halfway.wait(timeout=30), "the download never started"
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(timeout=30)
    key = entrypoint.cache_key(URI)
    assert not (cache / key).exists()
    [left] = [p.name for p in cache.iterdir() if p.is_dir()]
    assert left.startswith(entrypoint.TEMP_PREFIX + key), left  # half a download, under a name no pod reads

    assert entrypoint.fetch(URI, tmp_path / "pod", cache, fake_download(log), env={}) == "miss"
    assert downloads(log) == 2
    assert (tmp_path / "pod" / "model-settings.json").exists()
    assert sorted(p.name for p in cache.iterdir()) == [key, key + ".lock"]  # the leftover is gone


def test_a_failed_download_leaves_no_entry_and_fails_the_init_container(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()

    def broken(uri, directory):
        Path(directory, "part").write_text("half")
        raise RuntimeError("connection reset")

    with pytest.raises(RuntimeError, match="connection reset"):
        entrypoint.fetch(URI, tmp_path / "pod", cache, broken, env={})
    assert [p.name for p in cache.iterdir()] == [entrypoint.cache_key(URI) + ".lock"]


def test_the_termination_message_says_hit_or_miss(tmp_path):
    path = tmp_path / "termination-log"
    entrypoint.write_termination_message("cache: miss", env={entrypoint.TERMINATION_LOG_ENV: str(path)})
    assert path.read_text() == "cache: miss"
    # Outside a pod there is no /dev/termination-log: a warning, not a failure.
    entrypoint.write_termination_message("cache: hit", env={entrypoint.TERMINATION_LOG_ENV: str(tmp_path / "no" / "x")})


def test_the_examples_cleanup_evicts_old_entries_but_not_one_in_use_nor_its_lock(tmp_path):
    """examples/13-model-cache.yaml's CronJob script (busybox there; the
    host's sh, find and flock here): entries unused for MAX_AGE_DAYS go,
    unless a pod holds their lock; a crashed download older than a day goes."""
    import fcntl
    import subprocess

    import yaml

    example = ENTRYPOINT.parents[3] / "examples" / "13-model-cache.yaml"
    [cronjob] = [d for d in yaml.safe_load_all(example.read_text()) if d and d["kind"] == "CronJob"]
    [container] = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    script = container["command"][-1].replace("cd /cache", f"cd {tmp_path}")
    month_ago = time.time() - 30 * 86400
    for name in ("a" * 64, "b" * 64, "c" * 64, ".download-" + "d" * 64 + "-x1"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.bin").write_text("w")
        (tmp_path / f"{name}.lock").touch()
        if name != "b" * 64:
            os.utime(tmp_path / name, (month_ago, month_ago))
    with open(tmp_path / ("c" * 64 + ".lock")) as held:
        fcntl.flock(held, fcntl.LOCK_SH)  # a pod copying from it
        out = subprocess.run(["sh", "-c", script], env={"MAX_AGE_DAYS": "14", "PATH": os.environ["PATH"]},
                             capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["b" * 64, "c" * 64]
    assert f"evicted {'a' * 64}" in out.stdout and f"in use, kept: {'c' * 64}" in out.stdout
    assert (tmp_path / ("a" * 64 + ".lock")).exists()
