"""The operator image has two recipes: the Dockerfile (`make image`, Docker,
python:3.11-slim-bookworm) and hack/images/build.py's `operator` (built on
this machine without Docker, on the shared Debian 12 base). Both are read here
into one shape and must agree: Debian bookworm and Python 3.11, the venv, what
goes into it, pip removed and bytecode compiled, and the image config (user,
Env, ExposedPorts, Entrypoint, Cmd, WorkingDir). Each recipe changed alone
makes them differ (the mutation cases below). No network, no root, no build."""

import copy
import importlib.util
import json
import re
import shlex
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"

# What the Dockerfile's base image, python:3.11-slim-bookworm, sets itself
# and the final stage inherits: its PATH (the one `$PATH` expands to) and LANG.
PYTHON_IMAGE_PATH = "/usr/local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PYTHON_IMAGE_ENV = {"LANG": "C.UTF-8"}


def _load_build():
    """hack/images/build.py under a name of its own; the sibling modules it
    imports by their plain names (oci, local_runtimes) leave no trace."""
    saved_path, saved_modules = list(sys.path), set(sys.modules)
    try:
        spec = importlib.util.spec_from_file_location("modeldeploy_images_build", REPO / "hack" / "images" / "build.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path[:] = saved_path
        for name in set(sys.modules) - saved_modules - {"modeldeploy_images_build"}:
            if name in ("oci", "local_runtimes"):
                del sys.modules[name]


build = _load_build()


# -- each recipe, read into one shape ------------------------------------------------------

def dockerfile_stages(text: str) -> list[list[str]]:
    stages = []
    for line in re.sub(r"\\\n", " ", text).splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(line)
    return stages


def _instructions(stage: list[str], keyword: str) -> list[str]:
    return [line.split(None, 1)[1] for line in stage if line.split(None, 1)[0].upper() == keyword]


def _last(stage: list[str], keyword: str, default: str = "") -> str:
    found = _instructions(stage, keyword)
    return found[-1] if found else default


def from_dockerfile(text: str) -> dict:
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.M).group(1)
    image = re.fullmatch(r"python:(\d+\.\d+)\.\d+-slim-(\w+)(@sha256:[0-9a-f]{64})?", base)
    assert image, f"ARG PYTHON_IMAGE={base}: not a pinned python:X.Y.Z-slim-<debian> image"
    stages = dockerfile_stages(text)
    build_stage, final = stages[0], stages[-1]
    assert [stage[0].split()[1] for stage in stages] == ["${PYTHON_IMAGE}"] * len(stages), "every stage on PYTHON_IMAGE"

    # The build stage: COPY the sources, then one RUN: venv && install && the rest.
    source = [src for line in _instructions(build_stage, "COPY") if not line.startswith("--")
              for src in shlex.split(line)[:-1]]
    (run,) = _instructions(build_stage, "RUN")
    commands = [shlex.split(command) for command in run.split("&&")]
    venv_cmd, install, *finish = commands
    assert venv_cmd[:3] == ["python", "-m", "venv"] and len(venv_cmd) == 4, venv_cmd
    venv = venv_cmd[3]
    assert install == [f"{venv}/bin/pip", "install", "."], install
    assert f"--from=build {venv} {venv}" in _instructions(final, "COPY"), "the final stage takes the venv as built"

    env = dict(PYTHON_IMAGE_ENV)
    for line in _instructions(final, "ENV"):
        env.update(item.split("=", 1) for item in shlex.split(line))
    env = {name: value.replace("$PATH", "<the base's PATH>") for name, value in env.items()}
    return {
        "debian": image.group(2),
        "python": image.group(1),
        "venv": venv,
        "source": sorted(src.rstrip("/") for src in source),
        "finish": finish,
        "user": _last(final, "USER"),
        "env": env,
        "exposed_ports": sorted(port if "/" in port else f"{port}/tcp"
                                for line in _instructions(final, "EXPOSE") for port in line.split()),
        "entrypoint": json.loads(_last(final, "ENTRYPOINT", "[]")),
        "cmd": json.loads(_last(final, "CMD", "[]")),
        "working_dir": _last(final, "WORKDIR"),
    }


def from_build_py(base: dict, recipe: dict, default_path: str) -> dict:
    assert {"python3", "python3-venv"} <= set(base["include"]), "the venv needs Debian's python3 and python3-venv"
    assert all(f" {base['suite']}" in source for source in base["sources"]), base["sources"]
    cfg = recipe["config"]
    env = dict(item.split("=", 1) for item in cfg["env"])
    if env.get("PATH", "").endswith(":" + default_path):
        env["PATH"] = env["PATH"][: -len(default_path)] + "<the base's PATH>"
    return {
        "debian": base["suite"],
        "python": recipe["python"],
        "venv": recipe["venv"],
        "source": sorted(recipe["source"]),
        "finish": recipe["finish"],
        "user": cfg["user"],
        "env": env,
        "exposed_ports": sorted(cfg.get("exposed_ports", ())),
        "entrypoint": cfg.get("entrypoint", []),
        "cmd": cfg.get("cmd", []),
        "working_dir": cfg.get("working_dir", ""),
    }


def dockerfile_side(text: str | None = None) -> dict:
    return from_dockerfile(DOCKERFILE.read_text() if text is None else text)


def build_py_side(recipe: dict | None = None, base: dict | None = None) -> dict:
    return from_build_py(base or build.BASE, recipe or build.RECIPES["operator"], build.DEFAULT_PATH)


# -- they agree ----------------------------------------------------------------------------

def test_the_dockerfile_and_build_py_build_the_same_operator_image():
    assert build_py_side() == dockerfile_side()


def test_what_they_agree_on_is_what_the_operator_image_is_meant_to_be():
    """Pinned here too, so a change made to both recipes at once is seen in review."""
    side = dockerfile_side()
    assert (side["debian"], side["python"], side["venv"]) == ("bookworm", "3.11", "/opt/modeldeploy")
    assert side["finish"] == [["/opt/modeldeploy/bin/pip", "uninstall", "--yes", "pip"],
                              ["/opt/modeldeploy/bin/python", "-m", "compileall", "-q", "/opt/modeldeploy"]]
    assert side["user"] == "65532:65532"
    assert side["env"] == {"PATH": "/opt/modeldeploy/bin:<the base's PATH>", "LANG": "C.UTF-8",
                           "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"}
    assert side["exposed_ports"] == ["8080/tcp", "8081/tcp"]
    assert side["entrypoint"] == ["modeldeploy"]
    assert side["cmd"] == ["run", "--liveness=http://0.0.0.0:8081/healthz", "--metrics-port=8080"]


def test_build_py_path_is_the_python_images_path():
    """`$PATH` in the Dockerfile is the python image's; build.py spells the same directories out."""
    assert set(build.DEFAULT_PATH.split(":")) == set(PYTHON_IMAGE_PATH.split(":"))


def test_the_operator_image_is_built_only_on_request():
    """`make images` (the real node's serving images) does not build it."""
    assert build.RECIPES["operator"]["on_request"] is True
    assert not any(recipe.get("on_request") for name, recipe in build.RECIPES.items() if name != "operator")


# -- either recipe changed alone, they differ ----------------------------------------------

DOCKERFILE_EDITS = {
    "debian": ("-slim-bookworm", "-slim-trixie"),
    "python": ("python:3.11.", "python:3.12."),
    "venv": ("/opt/modeldeploy", "/opt/venv"),  # everywhere: the Dockerfile stays consistent
    "source": ("COPY operator ./operator", "COPY operator ./operator\nCOPY tests ./tests"),
    "pip kept": (" \\\n && /opt/modeldeploy/bin/pip uninstall --yes pip", ""),
    "no compileall": (" \\\n && /opt/modeldeploy/bin/python -m compileall -q /opt/modeldeploy", ""),
    "user": ("USER 65532:65532", "USER 65532"),
    "env": ("PYTHONUNBUFFERED=1", "PYTHONUNBUFFERED=1 \\\n    EXTRA=1"),
    "path": ("PATH=/opt/modeldeploy/bin:$PATH", "PATH=$PATH:/opt/modeldeploy/bin"),
    "ports": ("EXPOSE 8080 8081", "EXPOSE 8080"),
    "entrypoint": ('ENTRYPOINT ["modeldeploy"]', 'ENTRYPOINT ["/opt/modeldeploy/bin/modeldeploy"]'),
    "cmd": ('"--metrics-port=8080"]', '"--metrics-port=9090"]'),
    "workdir": ("USER 65532:65532", "USER 65532:65532\nWORKDIR /opt/modeldeploy"),
}


@pytest.mark.parametrize("what", DOCKERFILE_EDITS)
def test_the_dockerfile_changed_alone_no_longer_agrees(what):
    old, new = DOCKERFILE_EDITS[what]
    text = DOCKERFILE.read_text()
    assert old in text, f"the edit for {what!r} no longer applies to the Dockerfile: update it"
    assert dockerfile_side(text.replace(old, new)) != build_py_side()


def _set(path, value):
    def edit(recipe, base):
        *parents, leaf = path
        target = base if parents[:1] == ["BASE"] else recipe
        for key in parents[1:] if parents[:1] == ["BASE"] else parents:
            target = target[key]
        target[leaf] = value(target[leaf]) if callable(value) else value
    return edit


BUILD_PY_EDITS = {
    "debian": lambda recipe, base: base.update(suite="trixie", sources=[s.replace("bookworm", "trixie")
                                                                        for s in base["sources"]]),
    "python": _set(["python"], "3.12"),
    "venv": _set(["venv"], "/opt/venv"),
    "source": _set(["source"], lambda src: [*src, "tests"]),
    "pip kept": _set(["finish"], lambda finish: finish[1:]),
    "no compileall": _set(["finish"], lambda finish: finish[:1]),
    "user": _set(["config", "user"], "65532"),
    "env": _set(["config", "env"], lambda env: [*env, "EXTRA=1"]),
    "path": _set(["config", "env"], lambda env: [e.replace("PATH=/opt/modeldeploy/bin:", "PATH=") for e in env]),
    "ports": _set(["config", "exposed_ports"], ["8080/tcp"]),
    "entrypoint": _set(["config", "entrypoint"], ["/opt/modeldeploy/bin/modeldeploy"]),
    "cmd": _set(["config", "cmd"], lambda cmd: [*cmd[:-1], "--metrics-port=9090"]),
    "workdir": _set(["config", "working_dir"], "/opt/modeldeploy"),
}


@pytest.mark.parametrize("what", BUILD_PY_EDITS)
def test_build_py_changed_alone_no_longer_agrees(what):
    recipe, base = copy.deepcopy(build.RECIPES["operator"]), copy.deepcopy(build.BASE)
    BUILD_PY_EDITS[what](recipe, base)
    assert build_py_side(recipe, base) != dockerfile_side()


# -- a changed source is a new image -------------------------------------------------------

def test_the_operator_image_copies_what_the_dockerfile_copies():
    files = build.source_files(build.RECIPES["operator"])
    assert {"pyproject.toml", "README.md", "operator/modeldeploy/__init__.py", "operator/modeldeploy/cli/__init__.py", "operator/modeldeploy/data/runtimes.yaml"} <= set(files)
    assert not [f for f in files if "__pycache__" in f or f.endswith(".pyc") or ".egg-info" in f]


def test_the_operator_key_hashes_the_sources_and_only_its_own(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    (repo / "operator" / "modeldeploy").mkdir(parents=True)
    (repo / "pyproject.toml").write_text("[project]\n")
    (repo / "README.md").write_text("readme\n")
    source = repo / "operator" / "modeldeploy" / "__init__.py"
    source.write_text("print('one')\n")
    others = {name: build.image_key(name) for name in build.RECIPES if name != "operator"}

    def keys():
        build.sources.cache_clear()
        build.image_key.cache_clear()
        return {name: build.image_key(name) for name in build.RECIPES}

    monkeypatch.setattr(build, "REPO", repo)
    try:
        first = keys()
        source.write_text("print('two')\n")
        changed = keys()
        (repo / "operator" / "modeldeploy" / "__pycache__").mkdir()
        (repo / "operator" / "modeldeploy" / "__pycache__" / "__init__.cpython-311.pyc").write_bytes(b"\0")
        with_cache = keys()
    finally:
        monkeypatch.undo()
        build.sources.cache_clear()
        build.image_key.cache_clear()
    assert first["operator"] != changed["operator"], "an edited source must not reuse the image"
    assert with_cache["operator"] == changed["operator"], "bytecode caches are not sources"
    assert {name: key for name, key in first.items() if name != "operator"} == others
    assert {name: key for name, key in changed.items() if name != "operator"} == others
