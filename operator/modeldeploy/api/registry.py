"""MLflow model registry URIs (`models:/<name>/<version>`, `models:/<name>@<alias>`)
and the record of what one resolved to. Pure: parsing only; the lookup is the
kube layer's (kube/registry.py)."""

import re
from dataclasses import dataclass

from pydantic import Field

from .base import StatusModel

REGISTRY_SCHEME = "models:/"
# MLflow's own spelling: a registered model's name, then a version number or an alias.
REGISTRY_URI_PATTERN = r"^models:/[^/@]+(/[0-9]+|@[A-Za-z0-9_-]+)$"
REGISTRY_URI_MESSAGE = ("an MLflow registry URI is models:/<name>/<version number> or models:/<name>@<alias> "
                        "(e.g. models:/fraud/7, models:/fraud@champion)")
_REGISTRY_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>[0-9]+)|@(?P<alias>[A-Za-z0-9_-]+))$")


@dataclass(frozen=True)
class RegistryRef:
    """A registry URI taken apart: a registered model and a version or an alias."""

    name: str
    version: str | None = None
    alias: str | None = None

    @property
    def mutable(self) -> bool:
        """An alias can move to another version; a version number never changes."""
        return self.alias is not None


def is_registry_uri(uri: str) -> bool:
    return uri.startswith(REGISTRY_SCHEME)


def parse_registry_uri(uri: str) -> RegistryRef:
    """Raises ValueError (with REGISTRY_URI_MESSAGE) for a malformed one."""
    match = _REGISTRY_URI.match(uri)
    if match is None:
        raise ValueError(f"{uri!r}: {REGISTRY_URI_MESSAGE}")
    return RegistryRef(name=match["name"], version=match["version"], alias=match["alias"])


class RegistryRecord(StatusModel):
    """Which registry version a revision runs: recorded in the revision (so in
    status.stable.spec), in status.rollout and in each history entry."""

    uri: str = Field(description="The models:/ URI asked in spec.model.uri.")
    version: str = Field(description="The registry version it resolved to.")
    run_id: str | None = Field(None, description="The MLflow run that produced that version.")


class ModelStatus(RegistryRecord):
    """status.model: what spec.model.uri resolves to now (a models:/ URI only)."""

    resolved_uri: str = Field(description="The artifact URI the storage initializer downloads.")
    poll_interval: str | None = Field(None, description="spec.model.registry.pollInterval: the alias is "
                                      "re-read this often, and a move rolls out.")


@dataclass(frozen=True)
class Resolution:
    """One answer from the registry: `asked` (a models:/ URI) is served from `uri`."""

    asked: str
    uri: str
    version: str
    run_id: str | None = None

    def record(self) -> RegistryRecord:
        return RegistryRecord(uri=self.asked, version=self.version, run_id=self.run_id)


@dataclass(frozen=True)
class RegistryLookup:
    """What the kube layer could learn about a models:/ URI this pass: the
    resolution to use (the last good one), and the error of the last read
    when it failed (the registry unreachable, the version unknown)."""

    resolution: Resolution | None = None
    error: str | None = None
