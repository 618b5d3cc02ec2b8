"""Every ModelDeployment the README shows in a YAML block is one the
operator takes as written (the README is the user's manual: a block copied
from it must not be refused)."""
from __future__ import annotations

import re

import yaml

from modeldeploy.api import parse_spec
from modeldeploy.runtimes import load_runtime_table
from support.cluster import REPO

FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```", re.S | re.M)


def readme_model_deployments() -> list[dict]:
    found = []
    for tag, body in FENCE.findall((REPO / "README.md").read_text()):
        if tag.strip() == "yaml":
            found += [d for d in yaml.safe_load_all(body) if isinstance(d, dict) and d.get("kind") == "ModelDeployment"]
    return found


def test_every_model_deployment_in_the_readme_is_valid():
    table = load_runtime_table()
    documents = readme_model_deployments()
    assert len(documents) >= 2, "the README shows ModelDeployments in ```yaml blocks"
    for doc in documents:
        parse_spec(doc["spec"], known_formats=table.known_formats, name=doc["metadata"]["name"])
