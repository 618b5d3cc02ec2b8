"""Errors raised by validators that know which sub-field is at fault.

Pydantic reports an error raised in a model validator at the model's own path
(e.g. `spec.autoscaling`). Raising `FieldProblem("minReplicas", ...)` lets the
message point at `spec.autoscaling.minReplicas` instead, which is where the
user has to look.
"""


class FieldProblem(ValueError):
    def __init__(self, field: str | tuple[str | int, ...], message: str):
        super().__init__(message)
        self.field: tuple[str | int, ...] = (field,) if isinstance(field, str) else field
        self.message = message
