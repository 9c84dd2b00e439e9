"""A registered version as an MLflow pyfunc model: ``mlflow.pyfunc.load_model(
"models:/recmill@champion")`` loads the champion's fit on all the data, the fit that
publishes, through the model's own load (no pickle), and ``predict`` gives each user's
top k. This file is the model's code (MLflow's models from code): MLflow keeps a copy of
it beside the fit and runs it to load the model."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel

from recmill import schema as S

DEFAULT_K = 10


class RecommenderModel(PythonModel):
    """predict(DataFrame with a user_id column, params={"k": k}): user_id, rank, item_id,
    score, best first, leaving out what each user has; an unknown user gets the popular items."""

    def load_context(self, context) -> None:
        from recmill.models import load_saved

        fit = Path(context.artifacts["fit"])
        self.recommender = load_saved(fit)

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        k = int((params or {}).get("k", DEFAULT_K))
        users = model_input[S.USER_ID].astype(str).tolist()
        return self.recommender.recommend(users, k=k)[[S.USER_ID, "rank", S.ITEM_ID, "score"]]


def save_pyfunc(fit_dir: Path, into: Path) -> Path:
    """The MLflow model of the saved fit in ``fit_dir``, written to ``into``."""
    from mlflow.models import infer_signature

    example = pd.DataFrame({S.USER_ID: ["1"]})
    output = pd.DataFrame({S.USER_ID: ["1"], "rank": [1], S.ITEM_ID: ["1"], "score": [1.0]})
    mlflow.pyfunc.save_model(
        path=str(into), python_model=__file__, artifacts={"fit": str(fit_dir)},
        signature=infer_signature(example, output, params={"k": DEFAULT_K}),
    )
    return into


mlflow.models.set_model(RecommenderModel())
