"""The README's two commands install what the suite needs: `make test` and
`make demo` run hack/ensure-deps.sh, CI installs nothing beyond what they
do, and every Debian-provided command the tests and hack/ scripts run is in
that script's list (and nothing else is)."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ENSURE = REPO / "hack" / "ensure-deps.sh"


def ensure_list() -> dict[str, str]:
    """package -> command, from the PACKAGES=( ... ) array of the script."""
    body = re.search(r"^PACKAGES=\((.*?)^\)", ENSURE.read_text(), re.S | re.M).group(1)
    entries = re.findall(r'"([a-z0-9.+-]+):([a-z0-9._-]*)"', body)
    assert entries, body
    return dict(entries)


def make_dry_run(target: str) -> list[str]:
    # -B: as on a fresh clone, where the venv's stamp file does not exist yet.
    proc = subprocess.run(["make", "-n", "-B", target], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


@pytest.mark.parametrize("target,runs", [("test", "pytest"), ("demo", "hack/demo.py")])
def test_the_readme_commands_install_the_debian_packages_first(target, runs):
    lines = make_dry_run(target)
    ensure = [i for i, line in enumerate(lines) if "hack/ensure-deps.sh" in line]
    main = [i for i, line in enumerate(lines) if runs in line]
    assert ensure and main, lines
    assert ensure[0] < main[0], f"make {target} runs {runs} before hack/ensure-deps.sh:\n" + "\n".join(lines)


def test_ci_installs_nothing_the_readme_commands_do_not():
    ci = (REPO / ".ci" / "run").read_text()
    code = "\n".join(line.split("#", 1)[0] for line in ci.splitlines())
    assert "hack/ensure-deps.sh" in code
    assert "make test" in code
    # No package list of its own: a package only CI installed would let CI
    # pass where a person's `make test` fails.
    assert not re.search(r"\bapt(-get)?\b|\bdpkg\b|\bpip install\b", code), code


def python_commands() -> set[str]:
    """Commands the tests and hack/*.py look up or run by a literal name."""
    found: set[str] = set()
    for path in [*REPO.glob("tests/**/*.py"), *REPO.glob("hack/*.py"), *REPO.glob("bench/*.py")]:
        text = path.read_text()
        found |= set(re.findall(r"shutil\.which\(\"([\w.-]+)\"\)", text))
        found |= set(re.findall(r"subprocess\.\w+\(\[\"([\w.-]+)\"", text))
    return found


SHELL_WORD = re.compile(r"(?:^|[|;&(`]|\$\(|\bthen\b|\bdo\b|\belse\b|!)\s*([a-z][\w.-]*)(?![\w.-]*[=)])")


def shell_commands() -> set[str]:
    """Words in command position in hack/*.sh and .ci/run (roughly: at the
    start of a line or after a pipe, ;, &&, ( or $( ), comments, variable
    assignments and case patterns left out."""
    found: set[str] = set()
    for path in [*REPO.glob("hack/*.sh"), REPO / ".ci" / "run"]:
        for line in path.read_text().splitlines():
            line = line.split(" #", 1)[0]
            if line.lstrip().startswith("#"):
                continue
            found |= set(SHELL_WORD.findall(line))
    return found


def bash_builtins() -> set[str]:
    """`kill`, `echo`, `test`...: run by bash itself, whatever /usr/bin holds."""
    out = subprocess.run(["bash", "-c", "compgen -b; compgen -k"], capture_output=True, text=True).stdout
    return set(out.split())


def debian_package_of(command: str) -> str | None:
    """The Debian package that installed `command` here, unless it is part
    of every Debian system (Essential or required: coreutils, bash...)."""
    path = shutil.which(command)
    if not path or not shutil.which("dpkg-query"):
        return None
    owner = subprocess.run(["dpkg-query", "-S", str(Path(path).resolve())], capture_output=True, text=True)
    if owner.returncode != 0:
        owner = subprocess.run(["dpkg-query", "-S", path], capture_output=True, text=True)
    if owner.returncode != 0:
        return None  # not from a Debian package (pyenv, /usr/local/go, the venv...)
    package = owner.stdout.split(":", 1)[0].strip()
    info = subprocess.run(["dpkg-query", "-W", "-f=${Essential} ${Priority}", package],
                          capture_output=True, text=True).stdout.split()
    return None if info[:1] == ["yes"] or "required" in info else package


def test_every_debian_command_the_project_runs_is_installed_by_the_ensure_script():
    listed = ensure_list()
    commands = python_commands() | (shell_commands() - bash_builtins())
    # The scan finds what it must: the commands the ensure list exists for.
    for command in ("prometheus", "openssl", "curl", "make"):
        assert command in commands, f"the scan no longer finds {command}: {sorted(commands)}"
    unlisted = {}
    for command in sorted(commands):
        package = debian_package_of(command)
        if package and package not in listed and command not in listed.values():
            unlisted[command] = package
    assert not unlisted, f"commands the project runs from Debian packages hack/ensure-deps.sh does not install: {unlisted}"


def test_the_ensure_list_names_only_what_is_used():
    commands = python_commands() | shell_commands()
    for package, command in ensure_list().items():
        if command:
            assert command in commands, f"hack/ensure-deps.sh installs {package} for {command}, which nothing runs"


def test_the_ensure_script_installs_only_what_is_missing(tmp_path):
    """With every command present it does not call apt-get (cheap enough for
    every make target); with one missing it would install exactly that one."""
    fake = tmp_path / "bin"
    fake.mkdir()
    calls = tmp_path / "calls"
    for name in ("apt-get", "sudo"):
        (fake / name).write_text(f"#!/bin/sh\necho {name} \"$@\" >> {calls}\n")
        (fake / name).chmod(0o755)
    listed = ensure_list()
    present = {c for c in listed.values() if c} | {"go", "dpkg-query", "grep", "sed", "mktemp", "tail", "rm"}
    for command in present:
        if command == "prometheus":
            continue  # the one this run lacks
        real = shutil.which(command)
        (fake / command).symlink_to(real) if real else (fake / command).write_text("#!/bin/sh\n")
        (fake / command).chmod(0o755) if not real else None
    env = {"PATH": f"{fake}", "HOME": str(tmp_path)}
    proc = subprocess.run(["/bin/bash", str(ENSURE)], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    installs = [line for line in calls.read_text().splitlines() if " install " in f" {line} "]
    assert len(installs) == 1 and installs[0].split()[-1] == "prometheus", calls.read_text()
    assert "installing Debian packages: prometheus" in proc.stderr

    (fake / "prometheus").write_text("#!/bin/sh\n")
    (fake / "prometheus").chmod(0o755)
    calls.unlink()
    proc = subprocess.run(["/bin/bash", str(ENSURE)], env=env, capture_output=True, text=True)
    assert proc.returncode == 0 and not calls.exists() and proc.stderr == "", proc.stderr
