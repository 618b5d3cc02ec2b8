"""A strategic-merge patch of a pod template (spec.podTemplatePatch), done
as `kubectl patch --type strategic` does it for the fields a pod template
has: maps merge key by key (null deletes a key), lists with a merge key
merge item by item (containers by name, volumeMounts by mountPath...), other
lists are replaced; `$patch: delete` removes a list item or a map,
`$patch: replace` replaces a map whole. Pure: no client, no I/O."""

import copy
from typing import Any

# The pod template's lists that Kubernetes merges by a key (its
# patchMergeKey); every other list is replaced by the patch's.
MERGE_KEYS = {
    "containers": "name", "initContainers": "name", "ephemeralContainers": "name", "env": "name",
    "volumes": "name", "volumeMounts": "mountPath", "volumeDevices": "devicePath", "ports": "containerPort",
    "imagePullSecrets": "name", "hostAliases": "ip", "resourceClaims": "name", "schedulingGates": "name",
}
DIRECTIVE = "$patch"


class PatchError(ValueError):
    """A patch that cannot be applied: the message says where and why."""


def strategic_merge(base: dict[str, Any], patch: dict[str, Any], path: str = "") -> dict[str, Any]:
    """`base` with `patch` merged in (neither is changed)."""
    if not isinstance(patch, dict):
        raise PatchError(f"{path or 'the patch'}: must be a map, got {type(patch).__name__}")
    directive = patch.get(DIRECTIVE)
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != DIRECTIVE}
    if directive not in (None, "merge"):
        raise PatchError(f"{path or 'the patch'}: unknown {DIRECTIVE} {directive!r} (use replace or delete)")
    merged = copy.deepcopy(base)
    for key, value in patch.items():
        if key == DIRECTIVE:
            continue
        where = f"{path}.{key}" if path else key
        if value is None or (isinstance(value, dict) and value.get(DIRECTIVE) == "delete"):
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = strategic_merge(merged[key], value, where)
        elif isinstance(value, list) and key in MERGE_KEYS and isinstance(merged.get(key), list):
            merged[key] = _merge_list(merged[key], value, MERGE_KEYS[key], where)
        else:
            merged[key] = _without_directives(value)
    return merged


def _merge_list(base: list, patch: list, key: str, path: str) -> list:
    merged = copy.deepcopy(base)
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            raise PatchError(f"{path}: each item needs its merge key {key!r}")
        at = next((i for i, existing in enumerate(merged) if existing.get(key) == item[key]), None)
        if item.get(DIRECTIVE) == "delete":
            if at is not None:
                del merged[at]
        elif at is not None:
            merged[at] = strategic_merge(merged[at], item, f"{path}[{key}={item[key]}]")
        else:
            merged.append(_without_directives(item))
    return merged


def _without_directives(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_directives(v) for k, v in value.items() if k != DIRECTIVE}
    if isinstance(value, list):
        return [_without_directives(v) for v in value]
    return copy.deepcopy(value)
