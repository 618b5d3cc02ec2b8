"""A small OCI image writer: directory trees -> gzip layers -> an OCI image
archive (an oci-layout directory in one tar) that `ctr images import` loads.

No registry and no Docker here, so the images the real node runs are written
by this module from root filesystems built on the machine (hack/images/build.py).
Standard library only. What it writes, per the OCI image spec:

    oci-layout                    {"imageLayoutVersion": "1.0.0"}
    index.json                    one manifest, with its platform and the image
                                  reference (io.containerd.image.name, which
                                  containerd's import uses as the image name;
                                  org.opencontainers.image.ref.name the tag)
    blobs/sha256/<digest>         the manifest, the config and each layer

A layer is a tar of one directory tree, written in a sorted order with
numeric owners (no user names) and gzip without a timestamp, so the same tree
gives the same digest. An overlayfs upper directory is a valid input: its
whiteouts (character devices 0:0, opaque directories) become the OCI
`.wh.` entries.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
import os
import stat
import tarfile
from collections.abc import Callable, Iterable
from pathlib import Path

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
ANNOTATION_CONTAINERD_NAME = "io.containerd.image.name"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
WHITEOUT_PREFIX = ".wh."
OPAQUE_WHITEOUT = ".wh..wh..opq"


@dataclasses.dataclass(frozen=True)
class Layer:
    """A gzip layer blob on disk: `digest` names the compressed bytes,
    `diff_id` the uncompressed tar (what the config's rootfs lists)."""

    path: Path
    digest: str
    diff_id: str
    size: int

    def to_json(self) -> dict:
        return {"path": str(self.path), "digest": self.digest, "diff_id": self.diff_id, "size": self.size}

    @classmethod
    def from_json(cls, data: dict) -> Layer:
        return cls(Path(data["path"]), data["digest"], data["diff_id"], int(data["size"]))


class _Hashing(io.RawIOBase):
    """A write-only stream that hashes and counts what passes to `sink`."""

    def __init__(self, sink):
        self.sink, self.sha, self.size = sink, hashlib.sha256(), 0

    def writable(self):
        return True

    def write(self, data):
        self.sha.update(data)
        self.size += len(data)
        self.sink.write(data)
        return len(data)

    @property
    def digest(self) -> str:
        return "sha256:" + self.sha.hexdigest()


def whiteout_name(name: str, st: os.stat_result) -> str | None:
    """The OCI whiteout entry for an overlayfs whiteout (a character device
    0:0 named `name`), or None when the entry is not one."""
    if stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == 0 and os.minor(st.st_rdev) == 0:
        return WHITEOUT_PREFIX + name
    return None


def _is_opaque(path: str) -> bool:
    for attr in ("trusted.overlay.opaque", "user.overlay.opaque"):
        try:
            if os.getxattr(path, attr, follow_symlinks=False) == b"y":
                return True
        except OSError:
            pass
    return False


def _walk(root: Path, exclude: Callable[[str], bool]) -> Iterable[tuple[str, str]]:
    """(absolute path, name in the archive) for every entry under root, parents
    first, siblings sorted; `exclude(name)` drops an entry and what is below it."""

    def visit(directory: str, prefix: str):
        with os.scandir(directory) as entries:
            names = sorted(entry.name for entry in entries)
        for name in names:
            arcname = prefix + name
            if exclude(arcname):
                continue
            path = os.path.join(directory, name)
            yield path, arcname
            if os.path.isdir(path) and not os.path.islink(path):
                yield from visit(path, arcname + "/")

    yield from visit(str(root), "")


def write_layer(root: Path | str, blob_dir: Path | str, *, exclude: Callable[[str], bool] = lambda name: False,
                compresslevel: int = 6) -> Layer:
    """Tar and gzip the tree under `root` into blob_dir/<hex digest>; returns the Layer.

    Entries are named relative to root without a leading "./" ("usr/bin/python3").
    Device nodes, sockets and fifos are skipped (the runtime provides /dev),
    except overlayfs whiteouts, which become `.wh.<name>`."""
    root, blob_dir = Path(root), Path(blob_dir)
    blob_dir.mkdir(parents=True, exist_ok=True)
    tmp = blob_dir / f".layer-{os.getpid()}.tmp"
    with open(tmp, "wb") as raw:
        compressed = _Hashing(raw)
        with gzip.GzipFile(fileobj=compressed, mode="wb", mtime=0, compresslevel=compresslevel, filename="") as gz:
            uncompressed = _Hashing(gz)
            with tarfile.open(fileobj=uncompressed, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                for path, arcname in _walk(root, exclude):
                    st = os.lstat(path)
                    parent, _, name = arcname.rpartition("/")
                    whiteout = whiteout_name(name, st)
                    if whiteout is not None:
                        info = tarfile.TarInfo((parent + "/" if parent else "") + whiteout)
                        info.mtime = int(st.st_mtime)
                        tar.addfile(info)
                        continue
                    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode) or stat.S_ISLNK(st.st_mode)):
                        continue
                    info = tar.gettarinfo(path, arcname)  # hard links become LNKTYPE entries
                    info.uname = info.gname = ""
                    info.mtime = int(info.mtime)  # a float would add a pax header to every entry
                    if info.isreg():
                        with open(path, "rb") as data:
                            tar.addfile(info, data)
                    else:
                        tar.addfile(info)
                    if info.isdir() and _is_opaque(path):
                        opaque = tarfile.TarInfo(arcname + "/" + OPAQUE_WHITEOUT)
                        opaque.mtime = int(st.st_mtime)
                        tar.addfile(opaque)
    digest = compressed.digest
    final = blob_dir / digest.split(":", 1)[1]
    os.replace(tmp, final)
    return Layer(final, digest, uncompressed.digest, compressed.size)


@dataclasses.dataclass(frozen=True)
class ImageConfig:
    """The runtime defaults of an image (the OCI config's `config` object)."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    working_dir: str = ""
    user: str = ""
    exposed_ports: tuple[str, ...] = ()  # "8080/tcp"
    labels: tuple[tuple[str, str], ...] = ()

    def to_oci(self) -> dict:
        config: dict = {}
        if self.user:
            config["User"] = self.user
        if self.exposed_ports:
            config["ExposedPorts"] = {port: {} for port in self.exposed_ports}
        if self.env:
            config["Env"] = list(self.env)
        if self.entrypoint:
            config["Entrypoint"] = list(self.entrypoint)
        if self.cmd:
            config["Cmd"] = list(self.cmd)
        if self.working_dir:
            config["WorkingDir"] = self.working_dir
        if self.labels:
            config["Labels"] = dict(self.labels)
        return config


def _json_blob(value) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def _descriptor(media_type: str, data: bytes) -> dict:
    return {"mediaType": media_type, "digest": "sha256:" + hashlib.sha256(data).hexdigest(), "size": len(data)}


def image_documents(layers: list[Layer], config: ImageConfig, *, ref: str, created: str,
                    architecture: str = "amd64", os_name: str = "linux",
                    history: list[str] | None = None) -> tuple[bytes, bytes, dict]:
    """(config blob, manifest blob, index.json) for an image of `layers`."""
    history = history or [f"layer {i + 1}" for i in range(len(layers))]
    config_blob = _json_blob({
        "created": created,
        "architecture": architecture,
        "os": os_name,
        "config": config.to_oci(),
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        "history": [{"created": created, "created_by": line} for line in history],
    })
    manifest_blob = _json_blob({
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": _descriptor(MEDIA_CONFIG, config_blob),
        "layers": [{"mediaType": MEDIA_LAYER_GZIP, "digest": layer.digest, "size": layer.size} for layer in layers],
    })
    tag = ref.rsplit(":", 1)[1] if ":" in ref.rsplit("/", 1)[-1] else "latest"
    index = {
        "schemaVersion": 2,
        "mediaType": MEDIA_INDEX,
        "manifests": [{
            **_descriptor(MEDIA_MANIFEST, manifest_blob),
            "platform": {"architecture": architecture, "os": os_name},
            "annotations": {ANNOTATION_CONTAINERD_NAME: ref, ANNOTATION_REF_NAME: tag},
        }],
    }
    return config_blob, manifest_blob, index


def write_image_archive(out: Path | str, layers: list[Layer], config: ImageConfig, *, ref: str, created: str,
                        history: list[str] | None = None) -> Path:
    """Write the OCI image archive (an uncompressed tar of an oci-layout
    directory; the layers inside are gzip) to `out`, atomically."""
    out = Path(out)
    config_blob, manifest_blob, index = image_documents(layers, config, ref=ref, created=created, history=history)
    tmp = out.with_name(out.name + ".tmp")

    def add_bytes(tar: tarfile.TarFile, name: str, data: bytes):
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), 0o644, 0
        tar.addfile(info, io.BytesIO(data))

    def add_dir(tar: tarfile.TarFile, name: str):
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
        tar.addfile(info)

    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        add_bytes(tar, "oci-layout", _json_blob({"imageLayoutVersion": "1.0.0"}))
        add_bytes(tar, "index.json", _json_blob(index))
        add_dir(tar, "blobs")
        add_dir(tar, "blobs/sha256")
        for blob in (config_blob, manifest_blob):
            add_bytes(tar, "blobs/sha256/" + hashlib.sha256(blob).hexdigest(), blob)
        seen = set()
        for layer in layers:
            if layer.digest in seen:
                continue
            seen.add(layer.digest)
            info = tarfile.TarInfo("blobs/sha256/" + layer.digest.split(":", 1)[1])
            info.size, info.mode, info.mtime = layer.size, 0o644, 0
            with open(layer.path, "rb") as data:
                tar.addfile(info, data)
    os.replace(tmp, out)
    return out
