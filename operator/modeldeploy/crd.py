"""Generate the ModelDeployment CustomResourceDefinition from the API models.

    python -m modeldeploy.crd [--runtimes FILE] > crds/modeldeployment.yaml

The pydantic models are the single source of truth: the CRD schema, the
operator's validation and the status it writes all come from them. Cross-field
rules are repeated as CEL (x-kubernetes-validations) so `kubectl apply` rejects
a bad spec at once, with the same wording the operator would use.
"""

import argparse
import sys
from collections.abc import Collection
from typing import Any

import yaml

from .api import meta
from .api.spec import ModelDeploymentSpec
from .api.status import ModelDeploymentStatus
from .runtimes import load_runtime_table
from .structural import to_structural

PRINTER_COLUMNS = [
    {"name": "Version", "type": "string", "jsonPath": ".spec.model.version"},
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Ready", "type": "integer", "jsonPath": ".status.stable.readyReplicas",
     "description": "Ready replicas of the stable revision"},
    {"name": "Canary", "type": "integer", "jsonPath": ".status.traffic.canary",
     "description": "Percent of traffic sent to the canary"},
    {"name": "Check", "type": "string", "jsonPath": ".status.rollout.check.job", "priority": 1,
     "description": "The smoke-test check Job running now (phase CheckRunning; kubectl get md -o wide)"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def _runtime_rule(known_formats: Collection[str]) -> dict[str, str]:
    formats = ", ".join(f"'{f}'" for f in sorted(known_formats))
    return {
        "rule": "(has(self.runtime) && has(self.runtime.image)) || "
        f"(has(self.model.format) && self.model.format in [{formats}])",
        "message": f"set spec.model.format to a known format ({', '.join(sorted(known_formats))}) "
        "or give spec.runtime.image",
    }


def _name_rules() -> list[dict[str, str]]:
    # metadata.name is the only metadata a CRD schema may check (with CEL, at the root).
    return [
        {
            "rule": f"self.metadata.name.size() <= {meta.MAX_NAME_LENGTH}",
            "message": f"the name must be at most {meta.MAX_NAME_LENGTH} characters so child names "
            "such as <name>-canary-<revision> fit in 63",
        },
        {
            "rule": f"self.metadata.name.matches('{meta.NAME_PATTERN}')",
            "message": "the name must start with a letter and contain only lowercase letters, digits and '-' "
            "(it names a Service)",
        },
    ]


def spec_schema(known_formats: Collection[str]) -> dict[str, Any]:
    schema = to_structural(ModelDeploymentSpec.model_json_schema(by_alias=True))
    schema.setdefault("x-kubernetes-validations", []).append(_runtime_rule(known_formats))
    return schema


def _without_defaults(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _without_defaults(v) for k, v in node.items() if k != "default"}
    if isinstance(node, list):
        return [_without_defaults(v) for v in node]
    return node


def status_schema() -> dict[str, Any]:
    # Only the operator writes status, always in full; API-server defaults there
    # would make the stored status differ from what the operator computed.
    schema = _without_defaults(to_structural(ModelDeploymentStatus.model_json_schema(by_alias=True)))
    conditions = schema["properties"]["conditions"]
    # One condition per type: lets server-side apply and `kubectl wait` address them.
    conditions["x-kubernetes-list-type"] = "map"
    conditions["x-kubernetes-list-map-keys"] = ["type"]
    conditions["maxItems"] = 16
    return schema


def build_crd(known_formats: Collection[str]) -> dict[str, Any]:
    """The CRD as a dict, for the given runtime-table formats."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{meta.PLURAL}.{meta.GROUP}"},
        "spec": {
            "group": meta.GROUP,
            "names": {
                "kind": meta.KIND,
                "listKind": f"{meta.KIND}List",
                "plural": meta.PLURAL,
                "singular": meta.SINGULAR,
                "shortNames": list(meta.SHORT_NAMES),
                "categories": list(meta.CATEGORIES),
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": meta.VERSION,
                    "served": True,
                    "storage": True,
                    # scale: under capacity mode Replace the HPA scales the
                    # ModelDeployment itself, both roles together (issue 11).
                    "subresources": {"status": {}, "scale": {
                        "specReplicasPath": ".spec.autoscaling.replicas",
                        "statusReplicasPath": ".status.capacity.replicas",
                        "labelSelectorPath": ".status.capacity.selector",
                    }},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {
                        "openAPIV3Schema": {
                            "description": "A trained model served in production, rolled out safely.",
                            "type": "object",
                            "required": ["spec"],
                            "x-kubernetes-validations": _name_rules(),
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec_schema(known_formats),
                                "status": status_schema(),
                            },
                        }
                    },
                }
            ],
        },
    }


def render_crd(known_formats: Collection[str]) -> str:
    """The CRD as YAML text, exactly as committed in crds/modeldeployment.yaml."""
    header = "# Generated by `python -m modeldeploy.crd` from operator/modeldeploy/api. Do not edit.\n"
    return header + yaml.safe_dump(build_crd(known_formats), sort_keys=False, width=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modeldeploy.crd", description=__doc__.split("\n")[0])
    parser.add_argument("--runtimes", help="runtime table whose formats the CRD accepts (default: packaged)")
    args = parser.parse_args(argv)
    sys.stdout.write(render_crd(load_runtime_table(args.runtimes).known_formats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
