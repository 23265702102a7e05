"""A metric over training seeds as the metrics files store it: what `dvc metrics`, the report and the
regression gate read."""

from __future__ import annotations

import numpy as np


def summary(per_seed: dict[str, float], digits: int) -> dict:
    """{"mean", "std", "n", "seeds": {seed: value}}: plain keys that `dvc metrics` flattens. The standard
    deviation is the sample one (ddof 1), 0 for a single seed."""
    values = np.array(list(per_seed.values()), dtype=float)
    std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return {"mean": round(float(values.mean()), digits), "std": round(std, digits), "n": len(values),
            "seeds": {str(k): round(float(v), digits) for k, v in per_seed.items()}}
