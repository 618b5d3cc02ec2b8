"""The runtime table the real-node tests run the operator with
(`modeldeploy run --runtimes FILE`, written by hack/images/build.py) differs
from the shipped table only in image references, so what they prove is the
contract that ships. Also the references the image recipes give, and the
storage initializer's entrypoint. No network, no build."""

import difflib
import importlib.machinery
import importlib.util
import sys
from pathlib import Path

import pytest
import yaml

from modeldeploy.runtimes import load_runtime_table

REPO = Path(__file__).resolve().parents[2]
IMAGES = REPO / "hack" / "images"
SHIPPED = REPO / "operator" / "modeldeploy" / "data" / "runtimes.yaml"


def _load(name, path):
    loader = importlib.machinery.SourceFileLoader(name, str(path))
    spec = importlib.util.spec_from_loader(name, loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module


local_runtimes = _load("modeldeploy_images_local_runtimes", IMAGES / "local_runtimes.py")
entrypoint = _load("modeldeploy_images_initializer_entrypoint", IMAGES / "storage-initializer" / "initializer-entrypoint")

LOCAL = {
    "mlserver": "localhost/modeldeploy/mlserver:1.7.1-0123456789",
    "storage-initializer": "localhost/modeldeploy/storage-initializer:kserve-storage-0.16.0-0123456789",
}


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    shipped = local_runtimes.shipped_images()
    text = local_runtimes.local_table({shipped[name]: LOCAL[name] for name in shipped})
    path = tmp_path_factory.mktemp("runtimes") / "runtimes.yaml"
    path.write_text(text)
    return path


def leaves(value, path=()):
    """{path: scalar} for every leaf of a parsed YAML document."""
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in leaves(item, (*path, key)).items()}
    if isinstance(value, list):
        return {k: v for i, item in enumerate(value) for k, v in leaves(item, (*path, i)).items()}
    return {path: value}


def test_the_generated_table_differs_from_the_shipped_one_only_in_image_references(generated):
    shipped, local = leaves(yaml.safe_load(SHIPPED.read_text())), leaves(yaml.safe_load(generated.read_text()))
    assert shipped.keys() == local.keys(), "same fields, same entries, same lists"
    differing = {path for path in shipped if shipped[path] != local[path]}
    assert differing, "some image must have been replaced"
    assert all(path[-1] == "image" for path in differing), f"not only images differ: {sorted(differing)}"


def test_the_mlserver_formats_and_the_storage_initializer_get_the_local_images(generated):
    shipped, local = load_runtime_table(), load_runtime_table(generated)
    assert local.storage_initializer.image == LOCAL["storage-initializer"]
    for fmt, entry in shipped.formats.items():
        expected = LOCAL["mlserver"] if entry.image == shipped.formats["sklearn"].image else entry.image
        assert local.formats[fmt].image == expected, fmt
        # The whole contract but the image, as the operator reads it.
        assert local.formats[fmt].model_copy(update={"image": entry.image}) == entry
    assert local.storage_initializer.model_copy(update={"image": shipped.storage_initializer.image}) == shipped.storage_initializer


def test_only_image_lines_change_in_the_text_so_comments_and_anchors_stay(generated):
    diff = [line for line in difflib.unified_diff(SHIPPED.read_text().splitlines(), generated.read_text().splitlines(), n=0)
            if line.startswith(("+", "-")) and not line.startswith(("+++", "---"))]
    assert diff and all(line[1:].strip().startswith("image: ") for line in diff), diff


def test_a_reference_the_table_does_not_name_is_refused():
    with pytest.raises(ValueError, match="not in the runtime table"):
        local_runtimes.local_table({"docker.io/nobody/nothing:1": "localhost/x:1"})


def test_a_replacement_that_would_change_more_than_an_image_is_refused():
    shipped = local_runtimes.shipped_images()
    with pytest.raises(ValueError, match="more than image references"):
        local_runtimes.local_table({shipped["mlserver"]: "{a: b}"})


def test_the_recipes_pin_what_the_shipped_table_names():
    """The MLServer image carries the shipped image's versions; the storage
    initializer is kserve-storage (the shipped image's tag is the closest KServe
    release, whose storage code had no package of its own yet)."""
    shipped = local_runtimes.shipped_images()
    assert shipped["mlserver"].endswith(":1.7.1")
    mlserver_lock = (IMAGES / "mlserver" / "requirements.txt").read_text()
    assert "\nmlserver==1.7.1 " in mlserver_lock and "\nmlserver-sklearn==1.7.1 " in mlserver_lock
    storage_lock = (IMAGES / "storage-initializer" / "requirements.txt").read_text()
    assert "\nkserve-storage==0.16.0 " in storage_lock
    for lock in (mlserver_lock, storage_lock):
        pins = [line for line in lock.splitlines() if line and not line.startswith((" ", "#"))]
        assert pins and all("==" in line and line.endswith("\\") for line in pins), "every package pinned, with hashes"


@pytest.mark.parametrize(
    ("env", "endpoint"),
    [
        ({}, None),
        ({"S3_ENDPOINT": "minio:9000"}, "https://minio:9000"),
        ({"S3_ENDPOINT": "127.0.0.1:9000", "S3_USE_HTTPS": "0"}, "http://127.0.0.1:9000"),
        ({"S3_ENDPOINT": "127.0.0.1:9000", "S3_USE_HTTPS": "1"}, "https://127.0.0.1:9000"),
        ({"S3_ENDPOINT": "http://store:9000"}, "http://store:9000"),
        ({"S3_ENDPOINT": "minio:9000", "AWS_ENDPOINT_URL": "http://other:1"}, None),  # AWS_ENDPOINT_URL wins
    ],
)
def test_the_initializer_makes_aws_endpoint_url_from_kserves_s3_variables(env, endpoint):
    assert entrypoint.endpoint_from_kserve_env(env) == endpoint
