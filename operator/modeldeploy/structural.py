"""Convert a pydantic JSON schema into a Kubernetes *structural* OpenAPI schema.

The API server only accepts structural schemas for CRDs: every node has a type,
no $ref, no anyOf/oneOf except the int-or-string idiom, no `additionalProperties:
false`. Pydantic emits all of those, so this module rewrites them:

- $ref                      -> the referenced definition, inlined
- anyOf [X, null]           -> X (optional fields are simply omitted)
- anyOf [integer, string, null] -> as anyOf [integer, string]
- anyOf [integer, string]   -> x-kubernetes-int-or-string
- dict[str, Any]            -> object with x-kubernetes-preserve-unknown-fields
- additionalProperties false / title / default null -> dropped
  (unknown fields are pruned by the API server and rejected by kubectl's strict
  field validation, which is how typos get reported)
- empty list/dict defaults  -> dropped (they would only add noise to stored objects)
"""

from typing import Any

_DROPPED_KEYS = {"title", "$defs", "additionalProperties"}


def to_structural(schema: dict[str, Any]) -> dict[str, Any]:
    """Return the structural equivalent of a pydantic JSON schema (with $defs)."""
    return _convert(schema, schema.get("$defs", {}))


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Inline a $ref; keys next to the $ref (description, default) win."""
    if "$ref" not in node:
        return node
    name = node["$ref"].rsplit("/", 1)[-1]
    merged = dict(defs[name])
    merged.update({k: v for k, v in node.items() if k != "$ref"})
    return merged


def _without_null(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Collapse anyOf [X, null] into X, keeping the outer keys (description...)."""
    options = [o for o in node.get("anyOf", []) if o.get("type") != "null"]
    if "anyOf" in node and len(options) > 1:
        return {**node, "anyOf": options}  # an optional int-or-string: the null goes
    if "anyOf" not in node or len(options) != 1:
        return node
    inner = _resolve(options[0], defs)
    merged = {k: v for k, v in node.items() if k != "anyOf"}
    return {**inner, **merged}


def _is_int_or_string(node: dict[str, Any]) -> bool:
    types = sorted(o.get("type", "") for o in node.get("anyOf", []))
    return types == ["integer", "string"]


def _convert(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    node = _without_null(_resolve(node, defs), defs)
    node = _resolve(node, defs)

    if _is_int_or_string(node):
        out = {k: v for k, v in node.items() if k not in _DROPPED_KEYS | {"anyOf", "type"}}
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
        out["x-kubernetes-int-or-string"] = True
        return _clean_default(out)
    if "anyOf" in node or "oneOf" in node or "allOf" in node:
        raise ValueError(f"cannot express {node} as a structural schema")

    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED_KEYS or key == "required" and not value:
            continue
        if key == "const":  # a one-value Literal: OpenAPI v3.0 has no const
            out["enum"] = [value]
        elif key == "properties":
            out[key] = {name: _convert(child, defs) for name, child in value.items()}
        elif key == "items":
            out[key] = _convert(value, defs)
        else:
            out[key] = value

    if "enum" in out and "type" not in out:
        out["type"] = "string"
    if out.get("type") == "object" and "properties" not in out:
        extra = node.get("additionalProperties")
        if isinstance(extra, dict) and extra:
            out["additionalProperties"] = _convert(extra, defs)
        else:  # dict[str, Any] or a bare object: free-form on purpose
            out["x-kubernetes-preserve-unknown-fields"] = True
    return _clean_default(out)


def _clean_default(node: dict[str, Any]) -> dict[str, Any]:
    if "default" in node and node["default"] in (None, [], {}) and not (
        node["default"] == {} and node.get("type") == "object" and "properties" in node
    ):
        # Keep `default: {}` only on objects with properties: it triggers nested defaults.
        del node["default"]
    return node
