#!/usr/bin/env python3
"""Builds the container images the real node runs, without Docker or a registry,
into a cache outside the clone (like hack/build-binaries.sh), and writes the
runtime table that points the operator at them.

    hack/images/build.sh            (make images) build what is missing
    hack/images/build.py --help

Each image is one OCI archive for `ctr -n k8s.io images import`:

    base         Debian 12 (bookworm) minbase + python3 (3.11) + python3-venv +
                 ca-certificates, by mmdebstrap; user modeldeploy (1000:1000).
                 Built once, shared: it is the first layer of both images.
    mlserver     + /opt/venv with mlserver and mlserver-sklearn 1.7.1
                 (hack/images/mlserver/requirements.txt: every package pinned
                 with its hashes), started like docker.io/seldonio/mlserver:1.7.1:
                 `mlserver start $MLSERVER_MODELS_DIR` as user 1000 in /opt/mlserver.
    storage-initializer
                 + /opt/venv with kserve-storage 0.16.0 (pinned likewise) and
                 KServe's entrypoint path, called as `<image> <uri> <dest>`.
    operator     (only on request: `build.sh operator`, `make image-local`)
                 the Dockerfile's recipe on this base: a venv at /opt/modeldeploy
                 with the pins of the project's .venv (hack/images/operator/
                 requirements.txt, hashed) and the project's own wheel, built in
                 a throwaway venv (build-requirements.txt) from a copy of
                 pyproject.toml, README.md and operator/ (no __pycache__, .pyc or
                 egg-info, as .dockerignore); pip removed, bytecode compiled; user
                 65532:65532 and the Dockerfile's Env, ports, Entrypoint and Cmd
                 (tests/unit/test_operator_image_recipe.py keeps the two in step).

Cache layout (~/.cache/modeldeploy/images, or $XDG_CACHE_HOME/modeldeploy/images):

    base-<key>/rootfs, layer blob, packages.txt    the shared base
    <image>-<version>-<key>/image.tar               the OCI archive
    <image>-<version>-<key>/image.json              reference, digests, sizes
    <image>-<version>-<key>/packages.txt            Debian and pip versions inside
    wheels/                                         the wheels pip downloaded (hash-checked)
    runtimes-<hash>.yaml                            the shipped table, images replaced

A key is a hash of the recipe (the data below, the requirement locks, the
entrypoint, the repository files an image copies in, names and contents, and
the OCI writer), so a changed recipe builds anew and a warm cache returns at
once. Debian packages come from the bookworm mirror as it is
on the day of the build (no snapshot mirror is reachable here); the versions
installed are written to packages.txt. Progress goes to stderr, one line per
step with about how long it takes; the commands' own output to build.log next
to each result, whose tail is shown when a step fails. Stdout: one JSON object
(the images' references, archives and sizes, and the runtimes file).

Needs root (mmdebstrap, overlayfs mounts, chroot) and network access to the
Debian mirror and PyPI on a cold cache.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import fcntl
import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))

import local_runtimes  # noqa: E402
import oci  # noqa: E402

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # Docker's, the python images' too
CHROOT_PATH = "/opt/venv/bin:" + DEFAULT_PATH
OPERATOR_VENV = "/opt/modeldeploy"

# The shared base rootfs. Everything here is part of its key.
BASE = {
    "suite": "bookworm",
    "sources": [
        "deb http://deb.debian.org/debian bookworm main",
        "deb http://deb.debian.org/debian bookworm-updates main",
        "deb http://deb.debian.org/debian-security bookworm-security main",
    ],
    "variant": "minbase",
    # python3: Debian 12's 3.11 (mlserver 1.7.1 and kserve-storage 0.16.0 need >=3.9,<3.13);
    # python3-venv: ensurepip for the venvs; ca-certificates: TLS to model stores.
    "include": ["python3", "python3-venv", "ca-certificates"],
    "user": {"name": "modeldeploy", "uid": 1000, "gid": 1000, "home": "/home/modeldeploy"},
}

# What never goes into a layer: the runtime provides /dev, /proc, /sys and
# /etc/resolv.conf and hostname; build-time state; documentation, manual pages
# and translations (the copyright files stay). Left out here rather than by
# dpkg path-exclude options, which make mmdebstrap filter every package it
# unpacks through a Python process.
LAYER_EXCLUDE = {
    "under": ["dev/", "proc/", "sys/", "tmp/", "var/tmp/", "var/log/", "var/cache/apt/", "var/lib/apt/lists/",
              "root/.cache/", "mnt/wheels/", "usr/share/man/", "usr/share/info/", "usr/share/locale/"],
    "exact": ["etc/resolv.conf", "etc/hostname", "root/.cache", "mnt/wheels"],
    "docs": "usr/share/doc/",  # all but usr/share/doc/<package>/copyright
}


def excluded(name: str) -> bool:
    if name in LAYER_EXCLUDE["exact"] or name.startswith(tuple(LAYER_EXCLUDE["under"])):
        return True
    docs = LAYER_EXCLUDE["docs"]
    return name.startswith(docs) and name.count("/") > docs.count("/") and not name.endswith("/copyright")


LANG_ENV = ["LANG=C.UTF-8"]

RECIPES = {
    "mlserver": {
        "version": "1.7.1",
        "requirements": "mlserver/requirements.txt",
        "files": {},
        # MLServer writes its metrics and its worker's files under the working directory.
        "dirs": {"/opt/mlserver": 1000, "/mnt/models": 1000},
        "config": {
            "cmd": ["/bin/sh", "-c", 'exec mlserver start "$MLSERVER_MODELS_DIR"'],
            "env": ["PATH=" + CHROOT_PATH, *LANG_ENV, "PYTHONUNBUFFERED=1",
                    "MLSERVER_MODELS_DIR=/mnt/models", "MLSERVER_PATH=/opt/mlserver"],
            "working_dir": "/opt/mlserver",
            "user": "1000",
            "exposed_ports": ["8080/tcp", "8081/tcp", "8082/tcp"],  # HTTP, gRPC, metrics
        },
        "check": ["python", "-c", "import mlserver, mlserver_sklearn, sklearn; print(mlserver.__version__)"],
    },
    "storage-initializer": {
        "version": "0.16.0",
        "tag": "kserve-storage-0.16.0",
        "requirements": "storage-initializer/requirements.txt",
        "files": {"storage-initializer/initializer-entrypoint": ("/storage-initializer/scripts/initializer-entrypoint", 0o755)},
        "dirs": {"/work": 1000},
        "config": {
            "entrypoint": ["/storage-initializer/scripts/initializer-entrypoint"],
            "env": ["PATH=" + CHROOT_PATH, *LANG_ENV, "PYTHONUNBUFFERED=1"],
            "working_dir": "/work",
            "user": "1000",
        },
        "check": ["python", "-c", "import kserve_storage, boto3, requests"],
    },
    # The Dockerfile's image (tests/unit/test_operator_image_recipe.py compares them).
    "operator": {
        "version": tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"],
        "on_request": True,  # not in `make images`: the real node runs the operator from the clone
        "python": "3.11",  # Debian 12's python3; checked in the chroot, and against the Dockerfile's base
        "venv": OPERATOR_VENV,
        "requirements": "operator/requirements.txt",
        # The project itself: these repository paths are copied to /tmp/src, its
        # wheel built there by a venv with these build requirements, then installed.
        "source": ["pyproject.toml", "README.md", "operator"],
        "build_requirements": "operator/build-requirements.txt",
        # Run after the install, as the Dockerfile's RUN does.
        "finish": [[f"{OPERATOR_VENV}/bin/pip", "uninstall", "--yes", "pip"],
                   [f"{OPERATOR_VENV}/bin/python", "-m", "compileall", "-q", OPERATOR_VENV]],
        "files": {},
        "dirs": {},
        "config": {
            "entrypoint": ["modeldeploy"],
            "cmd": ["run", "--liveness=http://0.0.0.0:8081/healthz", "--metrics-port=8080"],
            # LANG as python:3.11-slim-bookworm sets it.
            "env": [f"PATH={OPERATOR_VENV}/bin:" + DEFAULT_PATH, *LANG_ENV, "PYTHONDONTWRITEBYTECODE=1",
                    "PYTHONUNBUFFERED=1"],
            "user": "65532:65532",
            "exposed_ports": ["8080/tcp", "8081/tcp"],  # metrics, liveness
        },
        # As the image's user, after pip is gone and the bytecode compiled.
        "check": ["setpriv", "--reuid=65532", "--regid=65532", "--clear-groups",
                  f"{OPERATOR_VENV}/bin/modeldeploy", "--help"],
    },
}
REPOSITORY = "localhost/modeldeploy"
# How the venvs are filled: only wheels, every one pinned by hash, nothing
# unlisted. `pip download` first fills a wheelhouse kept in the cache (pip's
# own HTTP cache stays empty behind a proxy that drops Cache-Control), then
# `pip install` reads only that wheelhouse.
PIP_WHEELS = ["--require-hashes", "--only-binary=:all:", "--no-deps", "-r", "/tmp/requirements.txt"]
PIP_INSTALL = ["--no-index", "--find-links", "/mnt/wheels", *PIP_WHEELS]
# The keys hash the data above, the files the recipes name and oci.py, not
# this file's code: bump this when a change to the steps below changes what
# an image holds.
BUILD_REVISION = 1


def pip_wheels(requirements: str) -> list[str]:
    """PIP_WHEELS for a lock other than /tmp/requirements.txt."""
    return [requirements if arg == "/tmp/requirements.txt" else arg for arg in PIP_WHEELS]


# Seconds each step takes on the 2-core machine with an empty cache, the venv
# steps including the wheels' download: 5 min 18 s in all, measured at a load
# average of about 4; three times as long under a load of 8 to 13.
ESTIMATES = {
    "base": 90, "base-layer": 20,
    "mlserver": 100, "mlserver-layer": 40,
    "storage-initializer": 45, "storage-initializer-layer": 15,
    "operator": 70, "operator-layer": 20,  # measured: 69 s and 19 s, the wheels' download included
}


def say(message: str) -> None:
    print(f"images: {message}", file=sys.stderr, flush=True)


def human(seconds: float) -> str:
    return f"{round(seconds)} s" if seconds < 90 else f"{round(seconds / 60)} min"


def human_size(size: int) -> str:
    return f"{size / 1e6:.0f} MB"


class StepFailed(Exception):
    pass


class Log:
    """Commands' output goes to one log file; its tail is shown on failure."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")

    def run(self, *argv: str, **kwargs) -> None:
        with open(self.path, "a") as out:
            out.write(f"$ {' '.join(argv)}\n")
            out.flush()
            proc = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **kwargs)
        if proc.returncode != 0:
            raise StepFailed(f"{argv[0]} exited {proc.returncode}")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.path.read_text(errors="replace").splitlines()[-lines:])


@contextlib.contextmanager
def step(what: str, estimate: str, log: Log):
    t0 = time.monotonic()
    say(f"{what} (about {human(ESTIMATES[estimate])} on 2 cores)...")
    try:
        yield
    except (StepFailed, OSError, subprocess.SubprocessError) as error:
        say(f"FAILED: {what}: {error}; the last lines of {log.path}:")
        print(log.tail(), file=sys.stderr)
        raise SystemExit(1) from error
    say(f"  done in {round(time.monotonic() - t0)} s")


def sha(*parts: bytes | str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
        digest.update(b"\0")
    return digest.hexdigest()[:10]


@functools.cache
def base_key() -> str:
    return sha(json.dumps(BASE, sort_keys=True), json.dumps(LAYER_EXCLUDE, sort_keys=True), str(BUILD_REVISION),
               (HERE / "oci.py").read_bytes())


def source_files(recipe: dict) -> list[str]:
    """The repository files a recipe copies in, relative and sorted: what
    .dockerignore lets through, without bytecode caches and egg-info."""
    found = []
    for entry in recipe.get("source", ()):
        path = REPO / entry
        if not path.is_dir():
            found.append(entry)
            continue
        for file in path.rglob("*"):
            rel = file.relative_to(REPO)
            if (file.is_file() and file.suffix != ".pyc"
                    and not any(part == "__pycache__" or part.endswith(".egg-info") for part in rel.parts)):
                found.append(rel.as_posix())
    return sorted(found)


@functools.cache  # read once: the image holds what its key hashed, whatever is edited meanwhile
def sources(name: str) -> dict[str, bytes]:
    return {src: (REPO / src).read_bytes() for src in source_files(RECIPES[name])}


@functools.cache  # read once: an edit during a build does not move the build's own paths
def image_key(name: str) -> str:
    recipe = RECIPES[name]
    files = [(HERE / recipe["requirements"]).read_bytes()] + [(HERE / src).read_bytes() for src in sorted(recipe["files"])]
    if "build_requirements" in recipe:
        files.append((HERE / recipe["build_requirements"]).read_bytes())
    for src, data in sources(name).items():  # name and content of every file copied in
        files += [src, data]
    return sha(base_key(), name, json.dumps(recipe, sort_keys=True), json.dumps(PIP_INSTALL), str(BUILD_REVISION),
               *files, (HERE / "oci.py").read_bytes())


def image_ref(name: str) -> str:
    recipe = RECIPES[name]
    return f"{REPOSITORY}/{name}:{recipe.get('tag', recipe['version'])}-{image_key(name)}"


def cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "modeldeploy" / "images"


def image_dir(name: str) -> Path:
    return cache_root() / f"{name}-{RECIPES[name]['version']}-{image_key(name)}"


def host_ca_bundle() -> str:
    """The CA bundle this machine's pip trusts (a TLS-inspecting proxy's root
    may be in it): pip in the chroot uses it, and it stays out of the image."""
    for candidate in (os.environ.get("PIP_CERT"), os.environ.get("REQUESTS_CA_BUNDLE"), os.environ.get("SSL_CERT_FILE"),
                      "/etc/ssl/certs/ca-certificates.crt"):
        if candidate and os.path.isfile(candidate):
            return candidate
    raise StepFailed("no CA bundle found for pip (set PIP_CERT)")


def pip_index_env() -> list[str]:
    """This machine's package index settings, if any, for pip in the chroot."""
    return [f"{name}={os.environ[name]}" for name in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_TRUSTED_HOST")
            if os.environ.get(name)]


def cached(name: str) -> bool:
    return (image_dir(name) / "image.json").exists() and (image_dir(name) / "image.tar").exists()


def chroot(log: Log, root: Path, *argv: str) -> None:
    env = ["PATH=" + CHROOT_PATH, "HOME=/root", "LANG=C.UTF-8", "PYTHONDONTWRITEBYTECODE=1", "PIP_NO_INPUT=1",
           "PIP_DISABLE_PIP_VERSION_CHECK=1"]
    log.run("chroot", str(root), "/usr/bin/env", "-i", *env, *argv)


@contextlib.contextmanager
def mounted(log: Log, *argv: str, target: Path):
    log.run("mount", *argv, str(target))
    try:
        yield
    finally:
        subprocess.run(["umount", str(target)], check=False)


def unmount_under(path: Path) -> None:
    """Unmount whatever is mounted at or below `path`, deepest first."""
    prefix = str(path.resolve())
    with open("/proc/self/mounts") as mounts:
        points = [line.split()[1].encode().decode("unicode_escape") for line in mounts]
    for point in sorted((p for p in points if p == prefix or p.startswith(prefix + "/")), key=len, reverse=True):
        subprocess.run(["umount", point], check=False)


def build_base(key: str) -> tuple[Path, oci.Layer]:
    """The shared base rootfs (a directory kept for the image builds) and its layer."""
    base = cache_root() / f"base-{key}"
    rootfs, layer_json = base / "rootfs", base / "layer.json"
    if layer_json.exists() and rootfs.is_dir():
        return rootfs, oci.Layer.from_json(json.loads(layer_json.read_text()))
    log = Log(base / "build.log")
    with step(f"building the base rootfs: Debian {BASE['suite']} {BASE['variant']} + {', '.join(BASE['include'])} "
              "(mmdebstrap)", "base", log):
        shutil.rmtree(base / "rootfs.tmp", ignore_errors=True)
        shutil.rmtree(rootfs, ignore_errors=True)
        argv = ["mmdebstrap", "--mode=root", f"--variant={BASE['variant']}", "--include=" + ",".join(BASE["include"])]
        log.run(*argv, BASE["suite"], str(base / "rootfs.tmp"), *BASE["sources"])
        user = BASE["user"]
        chroot(log, base / "rootfs.tmp", "groupadd", "--gid", str(user["gid"]), user["name"])
        chroot(log, base / "rootfs.tmp", "useradd", "--uid", str(user["uid"]), "--gid", str(user["gid"]),
               "--home-dir", user["home"], "--create-home", "--shell", "/usr/sbin/nologin", user["name"])
        packages = subprocess.run(["chroot", str(base / "rootfs.tmp"), "dpkg-query", "-W"], capture_output=True,
                                  text=True, check=True).stdout
        (base / "packages.txt").write_text(packages)
        os.rename(base / "rootfs.tmp", rootfs)
    with step("writing the base layer", "base-layer", log):
        layer = oci.write_layer(rootfs, base, exclude=excluded)
        layer_json.write_text(json.dumps(layer.to_json()))
    return rootfs, layer


def build_image(name: str, base_rootfs: Path, base_layer: oci.Layer) -> dict:
    recipe = RECIPES[name]
    out = image_dir(name)
    manifest = out / "image.json"
    if cached(name):
        return json.loads(manifest.read_text())
    log = Log(out / "build.log")
    work = cache_root() / "work" / name
    unmount_under(work)  # left by a build that was killed: never delete through a mount
    shutil.rmtree(work, ignore_errors=True)
    upper, ovl, merged = work / "upper", work / "ovl-work", work / "merged"
    for path in (upper, ovl, merged):
        path.mkdir(parents=True)
    wheels = cache_root() / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    ref = image_ref(name)
    venv = recipe.get("venv", "/opt/venv")
    what = f"a venv with {recipe['requirements']}" + (f" and the project ({', '.join(recipe['source'])})"
                                                       if "source" in recipe else "")
    with step(f"building the {name} rootfs: {what} (pip)", name, log):
        with mounted(log, "-t", "overlay", "overlay", "-o",
                     f"lowerdir={base_rootfs},upperdir={upper},workdir={ovl}", target=merged):
            (merged / "mnt" / "wheels").mkdir(parents=True, exist_ok=True)
            with mounted(log, "--bind", str(wheels), target=merged / "mnt" / "wheels"):
                shutil.copy(HERE / recipe["requirements"], merged / "tmp" / "requirements.txt")
                shutil.copy(host_ca_bundle(), merged / "tmp" / "host-ca.crt")
                if "python" in recipe:  # the base's python3 is the one the recipe names
                    chroot(log, merged, "python3", "-c",
                           f"import sys; assert '%d.%d' % sys.version_info[:2] == {recipe['python']!r}, sys.version")
                chroot(log, merged, "python3", "-m", "venv", venv)
                chroot(log, merged, "/usr/bin/env", "PIP_CERT=/tmp/host-ca.crt", *pip_index_env(),
                       f"{venv}/bin/pip", "download", "--no-cache-dir", "--dest", "/mnt/wheels", *PIP_WHEELS)
                chroot(log, merged, f"{venv}/bin/pip", "install", "--no-cache-dir", *PIP_INSTALL)
                if "source" in recipe:
                    # The project's wheel, built from a copy of its files in a
                    # throwaway venv under /tmp (which no layer holds).
                    shutil.copy(HERE / recipe["build_requirements"], merged / "tmp" / "build-requirements.txt")
                    for src, data in sources(name).items():
                        target = merged / "tmp" / "src" / src
                        target.parent.mkdir(parents=True, exist_ok=True)
                        target.write_bytes(data)
                    build_wheels = pip_wheels("/tmp/build-requirements.txt")
                    chroot(log, merged, "python3", "-m", "venv", "/tmp/build-venv")
                    chroot(log, merged, "/usr/bin/env", "PIP_CERT=/tmp/host-ca.crt", *pip_index_env(),
                           "/tmp/build-venv/bin/pip", "download", "--no-cache-dir", "--dest", "/mnt/wheels", *build_wheels)
                    chroot(log, merged, "/tmp/build-venv/bin/pip", "install", "--no-cache-dir", "--no-index",
                           "--find-links", "/mnt/wheels", *build_wheels)
                    chroot(log, merged, "/tmp/build-venv/bin/pip", "wheel", "--no-cache-dir", "--no-deps", "--no-index",
                           "--no-build-isolation", "--wheel-dir", "/tmp/dist", "/tmp/src")
                    built = sorted((merged / "tmp" / "dist").glob("*.whl"))
                    if len(built) != 1:
                        raise StepFailed(f"expected one wheel in /tmp/dist, found {[w.name for w in built]}")
                    chroot(log, merged, f"{venv}/bin/pip", "install", "--no-cache-dir", "--no-index", "--no-deps",
                           f"/tmp/dist/{built[0].name}")
                chroot(log, merged, f"{venv}/bin/pip", "check")
            for src, (dest, mode) in recipe["files"].items():
                target = merged / dest.lstrip("/")
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(HERE / src, target)
                os.chmod(target, mode)
            for directory, owner in recipe["dirs"].items():
                target = merged / directory.lstrip("/")
                target.mkdir(parents=True, exist_ok=True)
                os.chown(target, owner, owner)
            frozen = subprocess.run(["chroot", str(merged), f"{venv}/bin/pip", "freeze", "--all"],
                                    capture_output=True, text=True, check=True).stdout
            for command in recipe.get("finish", ()):
                chroot(log, merged, *command)
            chroot(log, merged, *recipe["check"])
        debian = (base_rootfs.parent / "packages.txt").read_text()
        finish = "".join(f"# then: {' '.join(command)}\n" for command in recipe.get("finish", ()))
        (out / "packages.txt").write_text("# Debian packages (dpkg-query -W)\n" + debian + f"# {venv} (pip freeze --all)\n"
                                          + frozen + finish)
    with step(f"writing the {name} layer and the OCI archive", f"{name}-layer", log):
        layer = oci.write_layer(upper, work, exclude=excluded)
        cfg = recipe["config"]
        config = oci.ImageConfig(
            entrypoint=tuple(cfg.get("entrypoint", ())), cmd=tuple(cfg.get("cmd", ())), env=tuple(cfg["env"]),
            working_dir=cfg.get("working_dir", ""), user=cfg["user"], exposed_ports=tuple(cfg.get("exposed_ports", ())),
            labels=(("org.opencontainers.image.title", name), ("org.opencontainers.image.version", recipe["version"]),
                    ("org.opencontainers.image.description", f"built by hack/images/build.py, recipe {image_key(name)}")),
        )
        created = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        history = [f"mmdebstrap {BASE['variant']} {BASE['suite']} + {' '.join(BASE['include'])}",
                   f"python3 -m venv {venv} && pip install -r {recipe['requirements']}"
                   + (f" && pip install <wheel of {' '.join(recipe['source'])}>" if "source" in recipe else "")
                   + "".join(f" && {' '.join(command)}" for command in recipe.get("finish", ()))]
        archive = oci.write_image_archive(out / "image.tar", [base_layer, layer], config, ref=ref, created=created,
                                          history=history)
        result = {"name": name, "ref": ref, "archive": str(archive), "size": archive.stat().st_size,
                  "layers": [base_layer.digest, layer.digest], "packages": str(out / "packages.txt")}
        manifest.write_text(json.dumps(result, indent=2) + "\n")
    shutil.rmtree(work, ignore_errors=True)
    return result


def write_runtimes(images: dict[str, dict]) -> Path:
    shipped = local_runtimes.shipped_images()
    text = local_runtimes.local_table({shipped[name]: images[name]["ref"] for name in shipped})
    path = cache_root() / f"runtimes-{sha(text)}.yaml"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default = [name for name, recipe in RECIPES.items() if not recipe.get("on_request")]
    parser.add_argument("images", nargs="*", help=f"which images (default: {', '.join(default)}; also: "
                        f"{', '.join(sorted(set(RECIPES) - set(default)))})")
    parser.add_argument("--refs", action="store_true", help="print the references the recipes give, build nothing")
    parser.add_argument("--check-cache", action="store_true", help="exit 0 when every image is in the cache, 1 otherwise")
    args = parser.parse_args()
    names = args.images or default
    unknown = set(names) - set(RECIPES)
    if unknown:
        parser.error(f"no recipe for {', '.join(sorted(unknown))}; known: {', '.join(RECIPES)}")
    if args.refs:
        print(json.dumps({name: image_ref(name) for name in names}))
        return 0
    if args.check_cache:
        return 0 if all(cached(n) for n in names) else 1
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time; a second caller waits, then finds the cache warm
        missing = [n for n in names if not cached(n)]
        images: dict[str, dict] = {}
        if missing:
            if os.geteuid() != 0:
                say("building images needs root (mmdebstrap, overlayfs, chroot): run as root or through sudo")
                return 1
            key = base_key()
            base_warm = (root / f"base-{key}" / "layer.json").exists()
            total = sum(ESTIMATES[n] + ESTIMATES[f"{n}-layer"] for n in missing)
            total += 0 if base_warm else ESTIMATES["base"] + ESTIMATES["base-layer"]
            say(f"building {' '.join(missing)} into {root}")
            say(f"  first time on this machine only; about {human(total)} on 2 cores (logs: build.log in each directory)")
            start = time.monotonic()
            rootfs, base_layer = build_base(key)
            for name in missing:
                images[name] = build_image(name, rootfs, base_layer)
            say(f"built {' '.join(missing)} in {human(time.monotonic() - start)}")
        for name in names:
            images[name] = images.get(name) or json.loads((image_dir(name) / "image.json").read_text())
            say(f"{images[name]['ref']}: {images[name]['archive']} ({human_size(images[name]['size'])})")
        summary = {"images": images}
        if set(local_runtimes.shipped_images()) <= set(images):
            summary["runtimes"] = str(write_runtimes(images))
            say(f"runtime table with these images: {summary['runtimes']}")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
