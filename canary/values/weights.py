"""The traffic split of a release."""

from __future__ import annotations

from dataclasses import dataclass

from canary.errors import ConfigError

__all__ = ["Weights"]


@dataclass(frozen=True)
class Weights:
    """Traffic split in percent over production, baseline and canary; sums to 100.

    Baseline and canary normally get equal shares so their metrics are comparable.
    """

    primary: int
    baseline: int = 0
    canary: int = 0

    def __post_init__(self) -> None:
        shares = (self.primary, self.baseline, self.canary)
        if any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in shares):
            raise ConfigError(f"traffic weights must be whole percentages >= 0, got {self}")
        if sum(shares) != 100:
            raise ConfigError(f"traffic weights must sum to 100, got {sum(shares)} in {self}")

    @classmethod
    def all_primary(cls) -> Weights:
        """Every request to production: where a release starts and every cleanup ends."""
        return cls(primary=100)
