"""hack/images/oci.py: the layers and OCI image archives the real node imports
(`ctr images import`). Fast, no network, no root: small trees in tmp_path."""

import gzip
import hashlib
import importlib.util
import io
import json
import os
import stat
import sys
import tarfile
import types
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


oci = _load("modeldeploy_images_oci", REPO / "hack" / "images" / "oci.py")

CONFIG = oci.ImageConfig(
    entrypoint=("/entry",), cmd=("serve", "--port", "8080"), env=("PATH=/usr/bin:/bin", "LANG=C.UTF-8"),
    working_dir="/work", user="1000", exposed_ports=("8080/tcp",), labels=(("org.opencontainers.image.title", "t"),),
)
REF = "localhost/modeldeploy/test:1.0-abc"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "root"
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "tmp" / "junk").mkdir(parents=True)
    (root / "etc" / "hello.txt").write_text("hello\n")
    os.chmod(root / "etc" / "hello.txt", 0o640)
    (root / "usr" / "bin" / "tool").write_text("#!/bin/sh\necho hi\n")
    os.chmod(root / "usr" / "bin" / "tool", 0o755)
    os.link(root / "usr" / "bin" / "tool", root / "usr" / "bin" / "tool-again")
    (root / "usr" / "bin" / "link").symlink_to("tool")
    (root / "tmp" / "junk" / "cache").write_text("build-time only")
    return root


def layer_members(layer):
    data = gzip.decompress(layer.path.read_bytes())
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return data, {m.name: m for m in tar.getmembers()}, [m.name for m in tar.getmembers()]


def test_a_layer_blob_is_named_and_sized_by_its_digest_and_lists_its_diff_id(tree, tmp_path):
    layer = oci.write_layer(tree, tmp_path / "blobs")
    blob = layer.path.read_bytes()
    assert layer.path.name == layer.digest.removeprefix("sha256:")
    assert layer.digest == sha256(blob) and layer.size == len(blob)
    assert layer.diff_id == sha256(gzip.decompress(blob))
    assert blob[4:8] == b"\0\0\0\0", "gzip header carries no timestamp"
    assert [p.name for p in (tmp_path / "blobs").iterdir()] == [layer.path.name], "no temporary file left"


def test_layer_entries_keep_type_mode_and_numeric_owner_in_a_sorted_order(tree, tmp_path):
    _, members, names = layer_members(oci.write_layer(tree, tmp_path / "blobs"))
    assert names == sorted(names, key=lambda n: n.split("/")), "parents first, siblings sorted"
    assert not any(n.startswith(("/", "./")) for n in names)
    hello = members["etc/hello.txt"]
    assert hello.isreg() and stat.S_IMODE(hello.mode) == 0o640 and hello.size == 6
    assert stat.S_IMODE(members["usr/bin/tool"].mode) == 0o755
    assert members["usr/bin/link"].issym() and members["usr/bin/link"].linkname == "tool"
    hardlink = members["usr/bin/tool-again"] if members["usr/bin/tool"].isreg() else members["usr/bin/tool"]
    assert hardlink.islnk(), "the second name of a file is a hard link entry, not a second copy"
    assert members["usr/bin"].isdir()
    assert all(m.uname == "" and m.gname == "" for m in members.values()), "owners are numeric only"
    assert all(m.uid == os.getuid() for m in members.values())
    assert all(not m.pax_headers for m in members.values()), "no per-entry pax headers (integer mtimes)"


def test_excluded_paths_and_what_is_below_them_stay_out(tree, tmp_path):
    _, members, _ = layer_members(oci.write_layer(tree, tmp_path / "blobs", exclude=lambda n: n.startswith("tmp/")))
    assert "tmp" in members and "tmp/junk" not in members and "tmp/junk/cache" not in members


def test_the_same_tree_gives_the_same_digest(tree, tmp_path):
    first = oci.write_layer(tree, tmp_path / "a")
    second = oci.write_layer(tree, tmp_path / "b")
    assert (first.digest, first.diff_id) == (second.digest, second.diff_id)


def test_overlayfs_whiteouts_become_oci_whiteouts():
    whiteout = types.SimpleNamespace(st_mode=stat.S_IFCHR | 0o000, st_rdev=os.makedev(0, 0))
    other_device = types.SimpleNamespace(st_mode=stat.S_IFCHR | 0o666, st_rdev=os.makedev(1, 3))
    regular = types.SimpleNamespace(st_mode=stat.S_IFREG | 0o644, st_rdev=0)
    assert oci.whiteout_name("gone.txt", whiteout) == ".wh.gone.txt"
    assert oci.whiteout_name("null", other_device) is None
    assert oci.whiteout_name("file", regular) is None


@pytest.fixture
def archive(tree, tmp_path):
    base = oci.write_layer(tree / "etc", tmp_path / "blobs")
    app = oci.write_layer(tree / "usr", tmp_path / "blobs")
    path = oci.write_image_archive(tmp_path / "image.tar", [base, app], CONFIG, ref=REF, created="2025-01-01T00:00:00Z",
                                   history=["base", "app"])
    with tarfile.open(path) as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    return types.SimpleNamespace(path=path, files=files, layers=[base, app])


def blob(files, digest):
    return files["blobs/sha256/" + digest.removeprefix("sha256:")]


def test_the_archive_is_an_oci_layout_whose_every_blob_matches_its_digest(archive):
    files = archive.files
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    assert not archive.path.with_name("image.tar.tmp").exists()
    blobs = {name: data for name, data in files.items() if name.startswith("blobs/sha256/")}
    assert len(blobs) == 4  # config, manifest, two layers
    for name, data in blobs.items():
        assert sha256(data) == "sha256:" + name.rsplit("/", 1)[1]


def test_index_names_the_image_for_containerd_and_its_platform(archive):
    index = json.loads(archive.files["index.json"])
    assert index["schemaVersion"] == 2 and index["mediaType"] == oci.MEDIA_INDEX
    [entry] = index["manifests"]
    assert entry["mediaType"] == oci.MEDIA_MANIFEST
    assert entry["platform"] == {"architecture": "amd64", "os": "linux"}
    assert entry["annotations"] == {"io.containerd.image.name": REF, "org.opencontainers.image.ref.name": "1.0-abc"}
    manifest_bytes = blob(archive.files, entry["digest"])
    assert len(manifest_bytes) == entry["size"]


def test_manifest_lists_the_config_and_the_gzip_layers_in_order(archive):
    [entry] = json.loads(archive.files["index.json"])["manifests"]
    manifest = json.loads(blob(archive.files, entry["digest"]))
    assert manifest["schemaVersion"] == 2 and manifest["mediaType"] == oci.MEDIA_MANIFEST
    assert manifest["config"]["mediaType"] == oci.MEDIA_CONFIG
    assert len(blob(archive.files, manifest["config"]["digest"])) == manifest["config"]["size"]
    assert [(l["mediaType"], l["digest"], l["size"]) for l in manifest["layers"]] == [
        (oci.MEDIA_LAYER_GZIP, layer.digest, layer.size) for layer in archive.layers
    ]
    for described, layer in zip(manifest["layers"], archive.layers):
        assert len(blob(archive.files, described["digest"])) == described["size"]


def test_config_carries_the_runtime_defaults_and_the_diff_ids(archive):
    [entry] = json.loads(archive.files["index.json"])["manifests"]
    manifest = json.loads(blob(archive.files, entry["digest"]))
    config = json.loads(blob(archive.files, manifest["config"]["digest"]))
    assert (config["architecture"], config["os"], config["created"]) == ("amd64", "linux", "2025-01-01T00:00:00Z")
    assert config["config"] == {
        "Entrypoint": ["/entry"], "Cmd": ["serve", "--port", "8080"], "Env": ["PATH=/usr/bin:/bin", "LANG=C.UTF-8"],
        "WorkingDir": "/work", "User": "1000", "ExposedPorts": {"8080/tcp": {}},
        "Labels": {"org.opencontainers.image.title": "t"},
    }
    assert config["rootfs"] == {"type": "layers", "diff_ids": [layer.diff_id for layer in archive.layers]}
    diff_ids = [sha256(gzip.decompress(blob(archive.files, layer.digest))) for layer in archive.layers]
    assert config["rootfs"]["diff_ids"] == diff_ids
    assert [h["created_by"] for h in config["history"]] == ["base", "app"]


def test_a_layer_used_twice_is_stored_once(tree, tmp_path):
    layer = oci.write_layer(tree, tmp_path / "blobs")
    path = oci.write_image_archive(tmp_path / "twice.tar", [layer, layer], CONFIG, ref=REF, created="2025-01-01T00:00:00Z")
    with tarfile.open(path) as tar:
        names = [m.name for m in tar.getmembers()]
    assert names.count("blobs/sha256/" + layer.digest.removeprefix("sha256:")) == 1


@pytest.mark.parametrize(
    ("ref", "tag"),
    [("localhost/modeldeploy/mlserver:1.7.1-abc", "1.7.1-abc"), ("localhost:5000/team/app", "latest"), ("app:v2", "v2")],
)
def test_the_tag_annotation_is_the_references_tag(ref, tag):
    layer = oci.Layer(Path("/nonexistent"), "sha256:" + "0" * 64, "sha256:" + "1" * 64, 1)
    _, _, index = oci.image_documents([layer], CONFIG, ref=ref, created="2025-01-01T00:00:00Z")
    assert index["manifests"][0]["annotations"][oci.ANNOTATION_REF_NAME] == tag
    assert index["manifests"][0]["annotations"][oci.ANNOTATION_CONTAINERD_NAME] == ref
