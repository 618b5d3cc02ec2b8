"""`modeldeploy render FILE`: the children a ModelDeployment produces, offline.

Runs the operator's own reconcile plan (reconcile.plan) for a new
ModelDeployment: its first revision fully rolled out (no canary in flight: the
stable Deployment from the spec, the Services, the HPA/PDB when the spec asks,
the provider's routes at 100/0), so a pull request or a GitOps diff shows
exactly what applying the file will make the operator write.

No cluster is involved, so the ModelDeployment has no uid yet: owner
references carry UID_PLACEHOLDER, and the header comment says so.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import yaml

from ..api import API_VERSION, KIND, InvalidSpec, ModelDeploymentSpec, parse_spec
from ..api.registry import RegistryLookup, Resolution, is_registry_uri
from ..builders import compute_revision
from .errors import FAILED, USAGE, CliError
from ..reconcile.plan import steady_children
from ..runtimes import RuntimeTable

UID_PLACEHOLDER = "00000000-0000-0000-0000-000000000000"
DEFAULT_NAMESPACE = "default"


@dataclass(frozen=True)
class Parsed:
    name: str
    namespace: str
    spec: ModelDeploymentSpec
    raw_spec: Any


def read_documents(path: str, text: str) -> list[Any]:
    try:
        return [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise CliError(FAILED, f"{path}: not valid YAML{line}: {problem}") from None


def parse_documents(
    path: str, documents: Iterable[Any], table: RuntimeTable, namespace: str | None
) -> tuple[list[Parsed], list[str]]:
    """The ModelDeployments in the file and notes about documents skipped.

    Other kinds (a Namespace next to the ModelDeployment, say) are skipped, as
    the operator would never see them; a file without any ModelDeployment, or
    with an invalid one, is an error listing every problem.
    """
    parsed: list[Parsed] = []
    problems: list[str] = []
    skipped: list[str] = []
    kinds: list[str] = []
    documents = list(documents)
    for number, doc in enumerate(documents, start=1):
        where = f"{path}: document {number}" if len(documents) > 1 else path
        if not isinstance(doc, dict):
            problems.append(f"{where}: not a Kubernetes object (expected a mapping with apiVersion and kind)")
            continue
        if doc.get("kind") != KIND:
            kinds.append(str(doc.get("kind") or "no kind"))
            skipped.append(f"{where}: skipped {doc.get('kind') or 'an object without kind'}, not a {KIND}")
            continue
        if doc.get("apiVersion") != API_VERSION:
            problems.append(f"{where}: apiVersion must be {API_VERSION} (got {doc.get('apiVersion')!r})")
            continue
        metadata = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
        name = metadata.get("name")
        if not isinstance(name, str) or not name:
            problems.append(f"{where}: metadata.name: required")
            continue
        try:
            spec = parse_spec(doc.get("spec"), known_formats=table.known_formats, name=name)
        except InvalidSpec as invalid:
            problems.extend(f"{where}: {name}: {problem}" for problem in invalid.problems)
            continue
        file_namespace = metadata.get("namespace")
        if file_namespace and namespace and file_namespace != namespace:
            problems.append(f"{where}: {name}: metadata.namespace is {file_namespace!r} but --namespace "
                            f"says {namespace!r} (drop one)")
            continue
        parsed.append(Parsed(name=name, namespace=file_namespace or namespace or DEFAULT_NAMESPACE, spec=spec,
                             raw_spec=doc.get("spec")))
    if problems:
        raise CliError(FAILED, *problems)
    if not parsed:
        found = f" (found {', '.join(kinds)})" if kinds else ""
        raise CliError(FAILED, f"{path}: no {KIND} in the file{found}: expected kind: {KIND}, "
                               f"apiVersion: {API_VERSION}")
    return parsed, skipped


def children(model: Parsed, table: RuntimeTable) -> list[dict[str, Any]]:
    """What the operator applies for `model` once it is fully rolled out."""
    return steady_children(name=model.name, namespace=model.namespace, uid=UID_PLACEHOLDER, spec=model.raw_spec,
                           table=table, registry=_unresolved(model.spec))


def _unresolved(spec: ModelDeploymentSpec) -> RegistryLookup | None:
    """Offline, no registry is asked: a models:/ URI is rendered as written
    (the operator puts the artifact URI it resolves to in its place)."""
    uri = spec.model.uri
    return RegistryLookup(Resolution(asked=uri, uri=uri, version="?")) if is_registry_uri(uri) else None


def render(path: str, text: str, table: RuntimeTable, namespace: str | None = None) -> tuple[str, list[str]]:
    """(multi-document YAML, notes for stderr)."""
    models, notes = parse_documents(path, read_documents(path, text), table, namespace)
    header = [
        f"# Rendered offline by `modeldeploy render` from {path}: what the operator creates",
        "# once the spec is fully rolled out (no canary in flight, traffic 100/0 to stable).",
        f"# ownerReferences[].uid is a placeholder ({UID_PLACEHOLDER}): the API server",
        "# assigns the ModelDeployment's uid when it is created.",
    ]
    parts = []
    notes = [*notes, *(f"{model.name}: {model.spec.model.uri} is rendered as written; the operator resolves it in "
                       f"the MLflow registry and renders the version's artifact URI instead"
                       for model in models if is_registry_uri(model.spec.model.uri))]
    for model in models:
        revision = compute_revision(model.spec, table)
        comment = (f"# {KIND} {model.namespace}/{model.name}: revision {revision}, "
                   f"model {model.spec.model.version}, traffic provider {model.spec.traffic.provider}\n")
        documents = yaml.safe_dump_all(children(model, table), sort_keys=False, width=120,
                                       explicit_start=True)
        # The comment goes right after the first `---` of this model's documents.
        first, rest = documents.split("\n", 1)
        parts.append(f"{first}\n{comment}{rest}")
    return "\n".join(header) + "\n" + "".join(parts), notes


def read_file(path: str, stdin) -> str:
    if path == "-":
        return stdin.read()
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError as error:
        raise CliError(USAGE, f"cannot read {path}: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise CliError(FAILED, f"{path}: not a text file (expected YAML)") from None
