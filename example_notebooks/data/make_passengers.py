"""Write passengers_train.csv and passengers_test.csv: made-up, Titanic-shaped passenger
records (no network, fixed seed). Run from anywhere: `python make_passengers.py`.

Like the Kaggle files they imitate, the columns have gaps: `Age` is often missing, `Cabin`
mostly, `Embarked` in two training rows, and `Fare` in one test row.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

SURNAMES = ["Smith", "Brown", "Kelly", "Olsen", "Novak", "Rossi", "Dubois", "Schmidt", "Lind"]
GIVEN = {"male": ["John", "William", "Karl", "Pierre", "Ivan"], "female": ["Mary", "Anna", "Elin", "Rose", "Clara"]}


def passengers(n: int, rng: np.random.Generator, first_id: int) -> pd.DataFrame:
    sex = rng.choice(["male", "female"], size=n, p=[0.64, 0.36])
    pclass = rng.choice([1, 2, 3], size=n, p=[0.24, 0.21, 0.55])
    age = np.clip(rng.normal(30 - 4 * (pclass - 2), 13, size=n), 0.5, 78).round(1)
    sibsp = rng.choice([0, 1, 2, 3], size=n, p=[0.68, 0.23, 0.06, 0.03])
    parch = rng.choice([0, 1, 2], size=n, p=[0.76, 0.14, 0.10])
    fare = np.round(rng.gamma(2.0, 8.0, size=n) * (4 - pclass) ** 1.6, 2)
    embarked = rng.choice(["S", "C", "Q"], size=n, p=[0.72, 0.19, 0.09])
    titles = []
    for s, a, p in zip(sex, age, parch, strict=True):
        if s == "male":
            title = "Master" if a < 13 else rng.choice(["Mr", "Mr", "Mr", "Dr", "Rev"])
        else:
            title = "Miss" if a < 25 and p == 0 else "Mrs"
        titles.append(title)
    names = [
        f"{rng.choice(SURNAMES)}, {t}. {rng.choice(GIVEN[s])}" for t, s in zip(titles, sex, strict=True)
    ]
    cabin = np.where(
        (pclass == 1) & (rng.random(n) < 0.8) | (rng.random(n) < 0.08),
        [f"{rng.choice(list('ABCDE'))}{rng.integers(1, 130)}" for _ in range(n)],
        None,
    )
    logit = (
        1.2 * (sex == "female") * 2
        - 0.9 * (pclass - 2)
        - 0.03 * (age - 30)
        + 0.6 * (np.array(titles) == "Master")
        - 0.4 * (sibsp + parch > 3)
        - 0.8
    )
    survived = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    frame = pd.DataFrame(
        {
            "PassengerId": np.arange(first_id, first_id + n),
            "Survived": survived,
            "Pclass": pclass,
            "Name": names,
            "Sex": sex,
            "Age": age,
            "SibSp": sibsp,
            "Parch": parch,
            "Ticket": [f"{rng.choice(['A/5', 'PC', 'STON/O2.', ''])} {rng.integers(1000, 400000)}".strip() for _ in range(n)],
            "Fare": fare,
            "Cabin": cabin,
            "Embarked": embarked,
        }
    )
    frame.loc[rng.random(n) < 0.2, "Age"] = np.nan
    return frame


def main() -> None:
    rng = np.random.default_rng(1912)
    here = Path(__file__).resolve().parent
    train = passengers(640, rng, 1)
    test = passengers(260, rng, 641)
    train.loc[[61, 829 % 640], "Embarked"] = np.nan
    test.loc[152, "Fare"] = np.nan
    train.to_csv(here / "passengers_train.csv", index=False)
    test.to_csv(here / "passengers_test.csv", index=False)


if __name__ == "__main__":
    main()
