"""Weights: how requests are split between the stable and the canary role."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Weights:
    """Percent of requests per role; always within 0..100 and summing to 100."""

    stable: int
    canary: int

    def __post_init__(self) -> None:
        if not (0 <= self.stable <= 100 and 0 <= self.canary <= 100) or self.stable + self.canary != 100:
            raise ValueError(f"weights must be within 0..100 and sum to 100 (got {self.stable}/{self.canary})")

    @classmethod
    def to_canary(cls, percent: int) -> "Weights":
        return cls(stable=100 - percent, canary=percent)

    @classmethod
    def from_ratio(cls, stable: float, canary: float) -> "Weights | None":
        """Percentages from relative weights (Gateway API weights need not sum
        to 100); None when nothing receives traffic, as there is no split."""
        if stable < 0 or canary < 0 or stable + canary <= 0:
            return None
        # Half rounds up (Python's round() would send 0.5% to 0): a canary
        # taking half a percent is not reported as taking nothing.
        return cls.to_canary(min(100, int(100 * canary / (stable + canary) + 0.5)))


ALL_STABLE = Weights(stable=100, canary=0)
