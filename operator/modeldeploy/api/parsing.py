"""Turn a raw `spec` dict into a ModelDeploymentSpec, or one readable error."""

import re
from collections.abc import Collection, Mapping
from typing import Any

from pydantic import ValidationError

from .meta import MAX_NAME_LENGTH, NAME_PATTERN
from .problems import FieldProblem
from .spec import KNOWN_FORMATS, ModelDeploymentSpec


class InvalidSpec(ValueError):
    """The spec cannot be served as written. `problems` are "path: message" lines."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


_REWORDED = {
    "extra_forbidden": "unknown field (check the spelling)",
    "missing": "required",
}
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _path(prefix: str, loc: tuple[str | int, ...]) -> str:
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif _IDENTIFIER.match(part):
            path += f".{part}"
        else:  # map keys such as nvidia.com/gpu
            path += f'["{part}"]'
    return path


def _message(error: dict) -> tuple[tuple[str | int, ...], str]:
    loc = tuple(error["loc"])
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, FieldProblem):
        return loc + cause.field, cause.message
    if error["type"] in _REWORDED:
        return loc, _REWORDED[error["type"]]
    message = error["msg"].removeprefix("Value error, ")
    message = message.replace("Input should be", "must be").replace("String should have", "must have")
    if error["type"] not in ("value_error", "assertion_error") and "input" in error:
        given = error["input"]
        if isinstance(given, (str, int, float, bool)):
            message += f" (got {given!r})"
    return loc, message


def check_name(name: str) -> list[str]:
    """Problems with a ModelDeployment name (children derive their names from it)."""
    problems = []
    if len(name) > MAX_NAME_LENGTH:
        problems.append(
            f"metadata.name: must be at most {MAX_NAME_LENGTH} characters so child names such as "
            f"<name>-canary-<revision> fit in 63 (got {len(name)})"
        )
    if not re.match(NAME_PATTERN, name):
        problems.append(
            "metadata.name: must start with a letter and contain only lowercase letters, digits and '-' "
            f"(got {name!r})"
        )
    return problems


def parse_spec(
    spec: Mapping[str, Any] | None,
    *,
    known_formats: Collection[str],
    name: str | None = None,
) -> ModelDeploymentSpec:
    """Validate `spec` (camelCase, as stored in the cluster).

    `known_formats` are the formats of the runtime table in use. `name`, when
    given, is checked too. Raises InvalidSpec listing every problem, each as
    "spec.path.to.field: what is wrong".
    """
    problems = check_name(name) if name is not None else []
    try:
        parsed = ModelDeploymentSpec.model_validate(
            spec if spec is not None else {},
            by_alias=True,
            by_name=False,  # the wire format is camelCase only
            context={KNOWN_FORMATS: frozenset(known_formats)},
        )
    except ValidationError as error:
        for detail in error.errors():
            loc, message = _message(detail)
            problems.append(f"{_path('spec', loc)}: {message}")
        raise InvalidSpec(problems) from None
    if problems:
        raise InvalidSpec(problems)
    return parsed
