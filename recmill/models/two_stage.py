"""Two-stage ranking: other models propose candidates, gradient-boosted trees order them.

fit() holds out each user's last ``label_fraction`` of training events as labels, fits
the generators on what comes before, and builds one feature row per (user, candidate):
each generator's score and rank, how many generators proposed it, item popularity and
recency, the user's history and category shares. A LightGBM classifier (stage 1),
learning from every labelled candidate and a ``stage1_negatives`` share of the others,
keeps each user's ``keep`` most promising candidates; a LightGBM lambdarank ranker
(stage 2) orders them. (With a quarter of the negatives, NDCG@10 stayed at 0.217 on
ML-100K and 0.25 on the shop while a fit took a quarter less time.) The generators are
then refit on all the data for serving, or taken from ``serving_fits`` when the caller
already has those fits. Boosters are stored as LightGBM text, generators through their own
save/load, in subfolders.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pydantic import BaseModel

from recmill import schema as S
from recmill.arrays import unique_ints, unique_ints_inverse
from recmill.config import InteractionsConfig, TwoStageConfig
from recmill.data.interactions import InteractionData, index_of
from recmill.data.split import label_positives, label_split
from recmill.errors import ModelSkipped
from recmill.models import model_class
from recmill.models.base import SCORE_CELLS, Recommender, text_array
from recmill.models.boosting import booster_params, early_stopping

log = logging.getLogger("recmill")
DAY = pd.Timedelta(days=1)
ITEM_FEATURES = [
    "n_generators", "item_popularity", "item_log_popularity", "category_share",
    "item_last_days", "item_first_days", "user_item_gap_days",
]
USER_FEATURES = ["user_history", "user_last_days"]
# feature -> what it says about the item, for the reasons (generator features are named apart)
FEATURE_FAMILY = {
    "n_generators": "agreement", "item_popularity": "popular", "item_log_popularity": "popular",
    "category_share": "category", "item_last_days": "recent", "item_first_days": "recent", "user_item_gap_days": "recent",
}


@dataclass
class Context:
    """What the features read besides the generators: the data the generators were fit on."""

    positive: sp.csr_matrix  # users x items the user has
    categories: np.ndarray  # item -> category code, -1 for none
    item_last_days: np.ndarray  # days from the item's last event to the end of the data
    item_first_days: np.ndarray  # ... from its first event
    user_last_days: np.ndarray  # ... from the user's last event

    @classmethod
    def of(cls, data: InteractionData, categories: np.ndarray) -> Context:
        ev = data.events
        age = ((ev[S.TIMESTAMP].max() - ev[S.TIMESTAMP]) / DAY).to_numpy(np.float64)
        rows, cols = data.event_cells()
        by_item = pd.Series(age).groupby(cols)
        return cls(
            positive=data.positive.tocsr(),
            categories=categories,
            item_last_days=by_item.min().reindex(np.arange(data.n_items)).to_numpy(np.float64),
            item_first_days=by_item.max().reindex(np.arange(data.n_items)).to_numpy(np.float64),
            user_last_days=pd.Series(age).groupby(rows).min().reindex(np.arange(data.n_users)).to_numpy(np.float64),
        )

    @cached_property
    def item_popularity(self) -> np.ndarray:
        """Users who have each item: counted once, not per batch of users (at Instacart
        size a count over every event per batch took a fifth of serving)."""
        return np.bincount(self.positive.indices, minlength=self.positive.shape[1]).astype(np.float32)

    @cached_property
    def user_history(self) -> np.ndarray:
        return np.diff(self.positive.indptr).astype(np.float32)


def category_codes(categories: np.ndarray) -> np.ndarray:
    """Item categories as codes, -1 for items without one."""
    codes, _ = pd.factorize(pd.Series(categories).replace("", None))
    return codes.astype(np.int64)


def generator_lists(model: Recommender, rows: np.ndarray, n: int, exclude_seen: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row * n_items + col, rank, score) of each user's n best items from one fitted generator."""
    top, top_scores = model.top_items(rows, n, exclude_seen)
    valid = np.isfinite(top_scores)
    keys = (np.asarray(rows, dtype=np.int64)[:, None] * len(model.item_ids_) + top)[valid]
    return keys, np.broadcast_to(np.arange(1, top.shape[1] + 1), top.shape)[valid], top_scores[valid]


def candidate_features(
    generators: dict[str, Recommender], names: list[str], context: Context, rows: np.ndarray, n: int, exclude_seen: bool
) -> pd.DataFrame:
    """One row per (user, candidate) of these users, sorted by row and col: the union of each
    generator's top n and the features the stages read. A generator in ``names`` but not in
    ``generators`` (skipped) leaves its columns missing."""
    n_items = context.positive.shape[1]
    lists = {g: generator_lists(generators[g], rows, n, exclude_seen) for g in names if g in generators}
    keys = unique_ints(np.concatenate([k for k, _, _ in lists.values()] or [np.zeros(0, np.int64)]))
    frame = pd.DataFrame({"row": keys // n_items, "col": keys % n_items})
    proposed = np.zeros(len(keys), dtype=np.float32)
    for g in names:
        score, rank = np.full(len(keys), np.nan, np.float32), np.full(len(keys), np.nan, np.float32)
        if g in lists:
            k, r, s = lists[g]
            at = np.searchsorted(keys, k)
            score[at], rank[at] = s, r
            proposed[at] += 1
        frame[f"score_{g}"], frame[f"rank_{g}"] = score, rank
    r, c = frame["row"].to_numpy(), frame["col"].to_numpy()
    popularity, history = context.item_popularity, context.user_history
    frame["n_generators"] = proposed
    frame["item_popularity"] = popularity[c]
    frame["item_log_popularity"] = np.log1p(popularity[c])
    frame["category_share"] = category_share(context, r, c, history)
    frame["item_last_days"] = context.item_last_days[c].astype(np.float32)
    frame["item_first_days"] = context.item_first_days[c].astype(np.float32)
    frame["user_item_gap_days"] = (context.item_first_days[c] - context.user_last_days[r]).astype(np.float32)
    frame["user_history"] = history[r]
    frame["user_last_days"] = context.user_last_days[r].astype(np.float32)
    return frame


def category_share(context: Context, rows: np.ndarray, cols: np.ndarray, history: np.ndarray) -> np.ndarray:
    """Share of the user's items in the candidate's category; missing when it has none."""
    cats = context.categories
    has = cats >= 0
    out = np.full(len(rows), np.nan, dtype=np.float32)
    if not has.any() or not len(rows):
        return out
    users, local = unique_ints_inverse(rows)
    onehot = sp.csr_matrix((np.ones(int(has.sum())), (np.flatnonzero(has), cats[has])), shape=(len(cats), cats.max() + 1))
    counts = (context.positive[users] @ onehot).toarray()
    known = cats[cols] >= 0
    out[known] = counts[local[known], cats[cols][known]] / np.maximum(history[rows[known]], 1)
    return out


def keep_best(rows: np.ndarray, cols: np.ndarray, scores: np.ndarray, keep: int) -> np.ndarray:
    """Mask of each user's ``keep`` best-scored candidates (ties: lower column first)."""
    order = np.lexsort((cols, -scores, rows))
    sorted_rows = rows[order]
    starts = np.searchsorted(sorted_rows, sorted_rows, side="left")
    mask = np.zeros(len(rows), dtype=bool)
    mask[order] = np.arange(len(rows)) - starts < keep
    return mask


def candidates_top_k(rows: np.ndarray, frame_rows: np.ndarray, cols: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """top_k of the rows x items matrix that is -inf but at the candidates, without building
    it: each row's k best candidates, ties by column; a row with fewer is padded with -inf."""
    local = pd.Index(rows).get_indexer(frame_rows)
    order = np.lexsort((cols, -scores, local))
    local, cols, scores = local[order], cols[order], scores[order]
    position = np.arange(len(local)) - np.searchsorted(local, local, side="left")
    kept = position < k
    top, top_scores = np.zeros((len(rows), k), dtype=np.int64), np.full((len(rows), k), -np.inf)
    top[local[kept], position[kept]], top_scores[local[kept], position[kept]] = cols[kept], scores[kept]
    return top, top_scores


def reciprocal_rank(frame: pd.DataFrame, names: list[str]) -> np.ndarray:
    """Sum of 1/rank over the generators: the order when no stage could be trained."""
    return sum(np.nan_to_num(1.0 / frame[f"rank_{g}"].to_numpy(np.float64)) for g in names)


def group_sizes(rows: np.ndarray) -> np.ndarray:
    """Lengths of the runs of equal rows (rows sorted): LightGBM's query groups."""
    return np.diff(np.flatnonzero(np.r_[True, rows[1:] != rows[:-1], True]))


class OwnReasons:
    """The generators' own reasons for one user's recommended items, each generator asked
    once for all of them, and only when one is needed."""

    def __init__(self, generators: dict[str, Recommender], row: int, items: np.ndarray):
        self.generators, self.row, self.items, self.asked = generators, row, np.asarray(items), {}

    def __call__(self, generator: str, col: int) -> str:
        if generator not in self.asked:
            reasons = self.generators[generator].reasons_for(np.array([self.row]), [self.items])[0]
            self.asked[generator] = dict(zip(self.items.tolist(), reasons))
        return self.asked[generator][int(col)]


class TwoStageRecommender(Recommender):
    name = "two_stage"
    Config = TwoStageConfig
    state = (
        "generator_names_", "features_", "categories_", "item_last_days_", "item_first_days_", "user_last_days_",
        "stage1_recall_",
    )
    heavy = True
    folds_in = True

    def __init__(
        self,
        config: TwoStageConfig | None = None,
        seed: int = 42,
        generator_configs: dict[str, BaseModel] | None = None,
        interactions: InteractionsConfig | None = None,
    ):
        super().__init__(config, seed)
        self.generator_configs = dict(generator_configs or {})
        self.interactions = interactions if interactions is not None else InteractionsConfig()
        # name -> that generator fitted on the data this model is fitted on (its serving
        # generators), when someone already has it: the pipeline shares the standalone fits
        self.serving_fits: Callable[[str], Recommender] | None = None

    # ---- training -------------------------------------------------------------------

    @classmethod
    def from_settings(cls, settings) -> TwoStageRecommender:
        """With each generator's own settings section and the interaction weights."""
        config = settings.models.two_stage
        generators = {name: getattr(settings.models, name) for name in config.generators}
        return cls(config, seed=settings.seed, generator_configs=generators, interactions=settings.interactions)

    def _fit(self, data: InteractionData) -> None:
        c = self.config
        earlier_events, label_events = label_split(data.events, c.label_fraction)
        positives = label_positives(earlier_events, label_events, data.positive_event_types)
        # the whole catalogue, so the earlier data has the same item columns as ``data``;
        # every user keeps an earlier event, so the rows match too
        catalogue = data.catalogue()
        weights = InteractionsConfig(event_weights=self.interactions.event_weights, positive_event_types=list(data.positive_event_types))
        earlier = InteractionData.build(earlier_events, catalogue, data.users, weights)
        generators = self._fit_generators(earlier)
        if not generators:
            raise ModelSkipped("two_stage skipped: every generator was skipped")
        self.generator_names_ = text_array(generators)
        self.categories_ = category_codes(self.item_categories_)
        learners = np.arange(earlier.n_users)
        if c.max_train_users is not None and earlier.n_users > c.max_train_users:  # at scale: the stages learn from a sample
            learners = np.sort(np.random.default_rng(self.seed).choice(earlier.n_users, size=c.max_train_users, replace=False))
            positives = positives[positives[S.USER_ID].isin(earlier.user_ids[learners]).to_numpy(bool)]
        frame = candidate_features(
            generators, list(self.generator_names_), Context.of(earlier, self.categories_),
            learners, c.candidates_per_generator, True,
        )
        self.features_ = text_array([col for col in frame.columns if col not in ("row", "col")])
        label_keys = index_of(self.user_ids_, positives[S.USER_ID]) * len(self.item_ids_) + index_of(self.item_ids_, positives[S.ITEM_ID])
        labels = np.isin(frame["row"].to_numpy() * len(self.item_ids_) + frame["col"].to_numpy(), label_keys)
        self._train_stages(frame, labels, len(positives))
        del generators, earlier, earlier_events, label_events, frame  # the serving generators need the room
        self.generators_ = self._fit_generators(data, self.serving_fits)
        context = Context.of(data, self.categories_)
        self.item_last_days_, self.item_first_days_ = context.item_last_days, context.item_first_days
        self.user_last_days_ = context.user_last_days

    def _user_state(self, data: InteractionData) -> dict[str, object]:
        return {"user_last_days_": Context.of(data, self.categories_).user_last_days}

    def refresh_users(self, data: InteractionData) -> TwoStageRecommender:
        """As the base class, its generators' users first: the candidates and features read them."""
        for generator in self.generators_.values():
            generator.refresh_users(data)
        return super().refresh_users(data)

    def _generator_config(self, name: str) -> BaseModel:
        return self.generator_configs.get(name) or model_class(name).Config()

    def _fit_generators(self, data: InteractionData, fits: Callable[[str], Recommender] | None = None) -> dict[str, Recommender]:
        fitted = {}
        for name in self.config.generators:
            try:
                fitted[name] = fits(name) if fits else model_class(name)(self._generator_config(name), seed=self.seed).fit(data)
            except ModelSkipped as exc:
                log.warning("two_stage: generator %s left out: %s", name, exc)
        return fitted

    def _train_stages(self, frame: pd.DataFrame, labels: np.ndarray, n_positives: int) -> None:
        """Stage 1 on every candidate, the ranker on what stage 1 keeps; early stopping on a
        seeded share of the users with labels. Too few labels: fall back to simpler orders."""
        import lightgbm

        c = self.config
        rows = frame["row"].to_numpy()
        with_labels = unique_ints(rows[labels])
        rng = np.random.default_rng(self.seed)
        n_valid = int(round(len(with_labels) * c.ranker_valid_users)) if len(with_labels) > 1 else 0
        valid = np.isin(rows, rng.choice(with_labels, size=n_valid, replace=False))
        X = frame[list(self.features_)]
        self.stage1_ = self.ranker_ = None
        if labels[~valid].all() or not labels[~valid].any():
            log.warning("two_stage: too few label positives among the candidates; ordering by the generators' reciprocal ranks")
            self.stage1_recall_ = np.float64(labels.sum() / max(n_positives, 1))
            return
        # stage 1 only orders each user's candidates: a sample of the negatives shifts its
        # scores alike for everyone and costs a fraction of the trees' time
        learn = ~valid & (labels | (np.random.default_rng([self.seed, 1]).random(len(labels)) < c.stage1_negatives))
        stage1 = lightgbm.LGBMClassifier(**booster_params(c.stage1, self.seed))
        stage1.fit(X[learn], labels[learn], **early_stopping(c.stage1, X[valid], labels[valid], None, self.name))
        self.stage1_ = lightgbm.Booster(model_str=stage1.booster_.model_to_string())
        first = self._out_of_fold(X, labels, rows, valid, learn, self.stage1_.current_iteration())
        kept = keep_best(rows, frame["col"].to_numpy(), first, c.keep)
        self.stage1_recall_ = np.float64((labels & kept).sum() / max(n_positives, 1))
        log.info("two_stage: stage 1 keeps %.1f%% of the label positives (candidates hold %.1f%%)",
                 100 * self.stage1_recall_, 100 * labels.sum() / max(n_positives, 1))
        # lambdarank learns only from lists with a positive
        lists = kept & np.isin(rows, rows[labels & kept])
        train, held = lists & ~valid, lists & valid
        if not labels[train].any():
            log.warning("two_stage: no kept label positive to train the ranker on; ordering by stage 1")
            return
        ranker = lightgbm.LGBMRanker(objective="lambdarank", **booster_params(c.ranker, self.seed))
        ranker.fit(
            X[train], labels[train], group=group_sizes(rows[train]),
            **early_stopping(c.ranker, X[held], labels[held], group_sizes(rows[held]), self.name),
        )
        self.ranker_ = lightgbm.Booster(model_str=ranker.booster_.model_to_string())

    def _out_of_fold(
        self, X: pd.DataFrame, labels: np.ndarray, rows: np.ndarray, valid: np.ndarray, learn: np.ndarray, n_estimators: int
    ) -> np.ndarray:
        """Stage-1 scores where no user is scored by a model that saw their labels: the
        held-out users by stage 1 itself, each half of the others by a model of the other half.
        In-sample scores would keep the positives stage 1 memorised, and the ranker would
        learn from lists unlike those it meets when serving."""
        import lightgbm

        scores = np.empty(len(X))
        if valid.any():
            scores[valid] = self.stage1_.predict(X[valid])
        users = unique_ints(rows[~valid])
        half = np.isin(rows, np.random.default_rng(self.seed).permutation(users)[: len(users) // 2])
        for part in (half & ~valid, ~half & ~valid):
            other = learn & ~part
            if not labels[other].any() or labels[other].all() or not part.any():
                log.warning("two_stage: too few label positives to score stage 1 out of fold; using its in-sample scores")
                return self.stage1_.predict(X)
            params = {**booster_params(self.config.stage1, self.seed), "n_estimators": n_estimators}
            scores[part] = lightgbm.LGBMClassifier(**params).fit(X[other], labels[other]).predict_proba(X[part])[:, 1]
        return scores

    # ---- serving --------------------------------------------------------------------
    def _context(self) -> Context:
        """The serving context, built once for the data the model holds."""
        if getattr(self, "_served_context", None) is None or self._served_context.positive is not self.seen_:
            self._served_context = Context(self.seen_, self.categories_, self.item_last_days_, self.item_first_days_, self.user_last_days_)
        return self._served_context

    def _ranked(self, rows: np.ndarray, k: int, exclude_seen: bool) -> tuple[pd.DataFrame, np.ndarray]:
        """The candidates the ranker orders for these users, and its scores of them."""
        c = self.config
        names = list(self.generator_names_)
        frame = candidate_features(self.generators_, names, self._context(), rows, max(c.candidates_per_generator, k), exclude_seen)
        if self.stage1_ is None:
            return frame, reciprocal_rank(frame, names)
        X = frame[list(self.features_)]
        first = self.stage1_.predict(X)
        kept = keep_best(frame["row"].to_numpy(), frame["col"].to_numpy(), first, max(c.keep, k))
        frame = frame[kept].reset_index(drop=True)
        scores = first[kept] if self.ranker_ is None else self.ranker_.predict(X[kept])
        return frame, np.asarray(scores, dtype=np.float64)

    def _batch_size(self) -> int:
        """Users per batch: the candidates' feature cells, not the catalogue, bound a batch
        (the generators batch their own scoring)."""
        per_user = len(self.generator_names_) * max(self.config.candidates_per_generator, 1) * len(self.features_)
        return max(1, SCORE_CELLS // per_user)

    def _dense(self, rows: np.ndarray, frame: pd.DataFrame, scores: np.ndarray) -> np.ndarray:
        dense = np.full((len(rows), len(self.item_ids_)), -np.inf)
        dense[pd.Index(rows).get_indexer(frame["row"]), frame["col"].to_numpy()] = scores
        return dense

    def _score(self, rows: np.ndarray) -> np.ndarray:
        frame, scores = self._ranked(rows, 0, exclude_seen=False)
        return self._dense(rows, frame, scores)

    def _top(self, rows: np.ndarray, k: int, exclude_seen: bool) -> tuple[np.ndarray, np.ndarray]:
        return self._top_explained(rows, k, exclude_seen)[:2]

    def _top_explained(self, rows: np.ndarray, k: int, exclude_seen: bool) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
        """The lists and the candidates' features: what the reasons are read from."""
        frame, scores = self._ranked(rows, k, exclude_seen)
        top, top_scores = candidates_top_k(rows, frame["row"].to_numpy(), frame["col"].to_numpy(), scores, min(k, len(self.item_ids_)))
        return top, top_scores, frame

    def training_metrics(self) -> dict[str, float]:
        """Stage-1 recall: the share of the training labels' positives kept for the ranker."""
        return {f"stage1_recall@{self.config.keep}": float(self.stage1_recall_)}

    # ---- reasons --------------------------------------------------------------------
    def _reasons(self, row: int, items: np.ndarray) -> list[str]:
        return self._batch_reasons(np.array([row]), [np.asarray(items)])[0]

    def _batch_reasons(self, rows: np.ndarray, items: list[np.ndarray], ranked: pd.DataFrame | None = None) -> list[list[str]]:
        """Name the features that pushed each item up most (LightGBM contributions), one
        booster call for the whole batch; ranked: the candidates' features (_top_explained),
        without which the reasons are the generators' own."""
        served = ranked
        n_items = len(self.item_ids_)
        wanted = np.concatenate([row * n_items + np.asarray(cols, dtype=np.int64) for row, cols in zip(rows, items)]) if len(items) else np.array([], np.int64)
        if served is not None and len(served):
            at = pd.Index(served["row"].to_numpy(np.int64) * n_items + served["col"].to_numpy(np.int64)).get_indexer(wanted)
        else:
            at = np.full(len(wanted), -1)
        booster = self.ranker_ if self.ranker_ is not None else self.stage1_
        names = list(self.generator_names_)
        found = at >= 0
        ranks = np.full((len(wanted), len(names)), np.inf)  # each generator's rank of each item, inf: not proposed
        if found.any():
            ranks[found] = served[[f"rank_{g}" for g in names]].to_numpy(np.float64)[at[found]]
        if booster is not None and found.any():
            picked = served.iloc[at[found]]
            contrib = booster.predict(picked[list(self.features_)], pred_contrib=True)[:, :-1]
            families = [f.split("_", 1)[1] if f.startswith(("score_", "rank_")) else FEATURE_FAMILY.get(f, "user") for f in self.features_]
            weight = pd.DataFrame(contrib, columns=families).T.groupby(level=0).sum().T.drop(columns="user", errors="ignore")
            labels, weights = np.array(weight.columns, dtype=object), np.zeros((len(wanted), weight.shape[1]))
            weights[found] = weight.to_numpy()
            # each item's two strongest families that pushed it up, ties in the column order
            best = np.argsort(-weights, axis=1, kind="stable")[:, :2]
            strongest = [labels[b[w > 0]].tolist() for b, w in zip(best, np.take_along_axis(weights, best, axis=1))]
        # the generators that proposed each item (finite ranks), best rank first, ties in generator order
        order, proposed = np.argsort(ranks, axis=1, kind="stable").tolist(), np.isfinite(ranks).sum(axis=1).tolist()
        proposers = [[names[j] for j in o[:n]] for o, n in zip(order, proposed)]
        out, start = [], 0
        for row, cols in zip(rows, items):
            own = OwnReasons(self.generators_, int(row), cols)
            texts = []
            for i, col in zip(range(start, start + len(cols)), cols):
                if booster is None or not found[start : start + len(cols)].any():  # nothing learned: the generators' ranks
                    texts.append(self._rank_reason(own, proposers[i], col))
                elif at[i] < 0:
                    texts.append(self._popular_reason(col))
                else:
                    texts.append(self._explain(own, col, strongest[i], proposers[i], names))
            out.append(texts)
            start += len(cols)
        return out

    def _explain(self, own: OwnReasons, col: int, strongest: list[str], proposers: list[str], names: list[str]) -> str:
        """Words for the strongest feature families: a generator speaks through its own reason
        (a shopper has no use for model names), the others through a short phrase."""
        if not strongest:
            return self._rank_reason(own, proposers, col)
        parts = []
        for family in strongest:
            if family == "popular":
                parts.append(self._popular_reason(col))
            elif family == "category":
                parts.append(f"matches your taste for {self.item_categories_[col]}")
            elif family == "recent":
                parts.append("in demand lately")
            elif family in (*names, "agreement") and not any(p.startswith("because") for p in parts):
                reason = self._generator_reason(own, col, [family, *proposers] if family in names else proposers)
                if reason:
                    parts.append(reason)
        parts = sorted(dict.fromkeys(parts), key=lambda p: not p.startswith("because"))  # history first
        return "; ".join(parts) if parts else self._rank_reason(own, proposers, col)

    def _generator_reason(self, own: OwnReasons, col: int, generators: list[str]) -> str | None:
        """The first 'because you ...' among these generators' own reasons, else the first reason."""
        known = [g for g in dict.fromkeys(generators) if g in self.generators_]
        first = None
        for g in known:
            reason = own(g, col)
            if reason.startswith("because"):
                return reason
            first = first or reason
        return first

    def _rank_reason(self, own: OwnReasons, proposers: list[str], col: int) -> str:
        reason = self._generator_reason(own, col, proposers)
        return reason or self._popular_reason(col)

    # ---- persistence ----------------------------------------------------------------

    def _save_extra(self, path: Path) -> None:
        """generators.json (their settings), each fitted generator and the two boosters."""
        meta = {
            "generator_configs": {n: self._generator_config(n).model_dump(mode="json") for n in self.config.generators},
            "interactions": self.interactions.model_dump(mode="json"),
            "fitted": list(self.generators_),
        }
        (path / "generators.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
        for name, model in self.generators_.items():
            model.save(path / "generators" / name)
        for name, booster in (("stage1", self.stage1_), ("ranker", self.ranker_)):
            if booster is not None:
                booster.save_model(str(path / f"{name}.txt"))

    def _load_extra(self, path: Path) -> None:
        import lightgbm

        meta = json.loads((path / "generators.json").read_text())
        self.generator_configs = {n: model_class(n).Config.model_validate(c) for n, c in meta["generator_configs"].items()}
        self.interactions = InteractionsConfig.model_validate(meta["interactions"])
        self.generators_ = {n: model_class(n).load(path / "generators" / n) for n in meta["fitted"]}
        self.stage1_, self.ranker_ = (
            lightgbm.Booster(model_file=str(path / f"{n}.txt")) if (path / f"{n}.txt").exists() else None for n in ("stage1", "ranker")
        )
