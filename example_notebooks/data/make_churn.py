"""Write the churn example's data (made up, no network, fixed seed). Run from anywhere:
`python make_churn.py`.

- churn_q1.csv: the first quarter's customers with their outcome (`churned`), to train on.
- churn_q2.csv: the next quarter's customers with their outcome, once it is known.
- churn_q2_requests.csv: the same customers as the served model sees them (no outcome).
- churn_q2_labels.csv: `id,churned` for those customers, as labels arrive later.

What changes between the quarters: a `west` region opens (no row of it in Q1). Its customers
churn far more than their other columns suggest, and they look like the customers the Q1
model is least sure about (their other columns put them near its decision boundary). The Q1
model's own probabilities therefore say its accuracy drops (covariate shift toward the
boundary, which label-free estimation can see), and a model retrained on Q2 learns the new
region and is better on it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
PLANS = {"basic": 0.5, "standard": 0.0, "premium": -0.7}
REGIONS = {"north": 0.0, "south": 0.2, "east": -0.2}
WEST = 3.0


def _base_logit(tenure, spend, calls, plan, region):
    return (
        1.5
        - 0.08 * tenure
        + 0.02 * (spend - 60.0)
        + 0.5 * calls
        + np.vectorize(PLANS.get)(plan)
        + np.vectorize(lambda r: REGIONS.get(r, 0.0))(region)
    )


def customers(n: int, rng: np.random.Generator, first_id: int, west_share: float) -> pd.DataFrame:
    plan = rng.choice(list(PLANS), size=n, p=[0.45, 0.35, 0.20])
    west = rng.random(n) < west_share
    region = np.where(west, "west", rng.choice(list(REGIONS), size=n, p=[0.4, 0.35, 0.25]))
    spend = np.round(rng.gamma(6.0, 10.0, size=n), 2)
    calls = rng.poisson(1.2, size=n)
    tenure = rng.integers(0, 73, size=n).astype(float)
    # The west's customers sit near the Q1 model's boundary: their tenure is what makes the
    # other columns' logit about zero, give or take.
    near = (
        1.5
        + 0.02 * (spend - 60.0)
        + 0.5 * calls
        + np.vectorize(PLANS.get)(plan)
        + rng.normal(0.0, 0.6, size=n)
    ) / 0.08
    tenure = np.where(west, np.clip(np.round(near), 0, 72), tenure)
    logit = _base_logit(tenure, spend, calls, plan, region) + WEST * west
    churned = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(int)
    return pd.DataFrame(
        {
            "id": np.arange(first_id, first_id + n),
            "tenure_months": tenure.astype(int),
            "plan": plan,
            "region": region,
            "monthly_spend": spend,
            "support_calls": calls,
            "churned": churned,
        }
    )


def main(out: Path = HERE) -> None:
    rng = np.random.default_rng(2026)
    q1 = customers(3000, rng, first_id=100_000, west_share=0.0)
    q2 = customers(3000, rng, first_id=200_000, west_share=0.5)
    out.mkdir(parents=True, exist_ok=True)
    q1.to_csv(out / "churn_q1.csv", index=False)
    q2.to_csv(out / "churn_q2.csv", index=False)
    requests = q2.sample(n=1000, random_state=1).sort_values("id")
    requests.drop(columns=["churned"]).to_csv(out / "churn_q2_requests.csv", index=False)
    requests[["id", "churned"]].to_csv(out / "churn_q2_labels.csv", index=False)


if __name__ == "__main__":
    main()
