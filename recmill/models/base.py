"""The model contract every recommender follows.

The constructor only stores the typed config; learned state ends in ``_``; ``fit(data)``
returns self; ``recommend(users, k, exclude_seen)`` returns a frame of user_id, item_id,
rank, score (and reason when asked); ``save(dir)``/``load(dir)`` use JSON plus an npz
read with allow_pickle=False. Scoring is a function of a batch of users, so it can be
sharded; users the model has never seen get the popularity list. ``refresh_users(data)``
folds users' events in with the item side frozen (models with ``folds_in``).
"""

from __future__ import annotations

import copy
import hashlib
import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar, Self

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pydantic import BaseModel

from recmill import schema as S
from recmill.data.interactions import InteractionData
from recmill.errors import IntegrityError, NotFittedError, RecmillError
from recmill.models import CATALOGUE
from recmill.progress import steps

FORMAT_VERSION = 2  # of a saved model's files: state.npz holds every declared attribute by its name
SCORE_CELLS = 4_000_000  # users x items scored at once: bounds a batch's dense scores to ~32 MB
VERBS = {0: "interacted with", 1: "viewed", 2: "added to your cart", 3: "bought", 4: "rated"}

RECOMMENDATION_COLUMNS = [S.USER_ID, S.ITEM_ID, "rank", "score"]
SIMILAR_COLUMNS = [S.ITEM_ID, "similar_item_id", "rank", "score"]


def text_array(values) -> np.ndarray:
    """Strings as a fixed-width unicode array (storable without pickle)."""
    return np.asarray(["" if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)) else str(v) for v in values], dtype=str)


class Recommender(ABC):
    name: ClassVar[str]
    Config: ClassVar[type[BaseModel]]
    has_similar_items: ClassVar[bool] = False  # implements _similar
    has_explanations: ClassVar[bool] = False  # implements explain
    predicts_ratings: ClassVar[bool] = False  # implements predict (scored by RMSE / MAE)
    publishes_tables: ClassVar[bool] = False  # implements tables (extra warehouse tables)
    # implements reorder_probabilities: scored by AUC, log loss and next-basket F1, and
    # never chosen to publish recommendations
    predicts_reorders: ClassVar[bool] = False
    # among the slowest and largest fits: started first when models train side by side and no
    # earlier run's times say otherwise; trained one at a time, its fits hold no other fit's
    # data and no evaluation runs beside them
    heavy: ClassVar[bool] = False
    # the learned attributes save() writes to state.npz and load() restores, beside the
    # base class's own (BASE_STATE): numpy arrays, scalars and sparse matrices
    state: ClassVar[tuple[str, ...]] = ()
    # refresh_users can fold new events into users with the item side frozen (_user_state)
    folds_in: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:  # a model of the catalogue (recmill.models.model_class)
            CATALOGUE[cls.name] = cls

    def __init__(self, config: BaseModel | None = None, seed: int = 42):
        self.config = config if config is not None else self.Config()
        self.seed = seed

    @classmethod
    def from_settings(cls, settings) -> Self:
        """A fresh model with its section of settings.models (a model that needs more overrides this)."""
        return cls(getattr(settings.models, cls.name), seed=settings.seed)

    # ---- subclasses implement these -------------------------------------------------
    @abstractmethod
    def _fit(self, data: InteractionData) -> None:
        """Learn the model's own state from the data."""

    @abstractmethod
    def _score(self, rows: np.ndarray) -> np.ndarray:
        """Scores of every item for the users at these row numbers: (len(rows), n_items)."""

    def _top(self, rows: np.ndarray, k: int, exclude_seen: bool) -> tuple[np.ndarray, np.ndarray]:
        """Column numbers and scores of each user's k best items, best first; -inf pads.

        The default scores every item densely; a model with an index (FAISS) overrides it.
        """
        scores = self._score(rows)
        if scores.dtype != np.float32:  # float32 scores stay so: half the bytes for top_k to read, the same order
            scores = np.asarray(scores, dtype=np.float64)
        if exclude_seen:
            mask_seen(scores, self.seen_[rows])
        top, top_scores = top_k(scores, k)
        return top, top_scores.astype(np.float64)

    def _save_extra(self, path: Path) -> None:
        """Write what the declared state does not hold: side files (boosters, weights, inner models)."""

    def _load_extra(self, path: Path) -> None:
        """Read what _save_extra wrote and rebuild what derives from the state (an index)."""

    def _reasons(self, row: int, items: np.ndarray) -> list[str]:
        """A short why for each recommended item (column numbers) of one known user."""
        return [self._popular_reason(i) for i in items]

    def _top_explained(self, rows: np.ndarray, k: int, exclude_seen: bool) -> tuple[np.ndarray, np.ndarray, object]:
        """_top, and what _batch_reasons needs of this batch to explain it (a model whose
        reasons read what its ranking computed returns that; the others, None)."""
        return (*self._top(rows, k, exclude_seen), None)

    def _batch_reasons(self, rows: np.ndarray, items: list[np.ndarray], ranked=None) -> list[list[str]]:
        """_reasons of a batch of known users (a model that explains a batch at once overrides
        it); ranked: what _top_explained returned with the lists."""
        return [self._reasons(int(row), cols) for row, cols in zip(rows, items)]

    def later_fit_config(self) -> BaseModel:
        """The config of this model's later fits (train + valid, all the data) when train.refit
        refreshes and the model cannot fold in: its own, or what this fit found enough."""
        return self.config

    def _similar(self, items: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Column numbers and scores of the k items most like each given column, itself left out."""
        raise RecmillError(f"model '{self.name}' does not produce similar items")

    def explain(self, user_id: str, item_id: str) -> dict:
        """Why this item for this user: the history items and attributes behind the score."""
        raise RecmillError(f"model '{self.name}' does not explain its scores")

    def predict(self, user_ids, item_ids) -> np.ndarray:
        """Predicted ratings of (user, item) pairs."""
        raise RecmillError(f"model '{self.name}' does not predict ratings")

    def _user_state(self, data: InteractionData) -> dict[str, object]:
        """The model's per-user attributes (a row per user, dense or sparse) for data's users,
        computed from their events alone with the item side as it is. Called on a copy of the
        model whose user_ids_, seen_ and event_code_ are data's (see refresh_users)."""
        return {}

    def training_metrics(self) -> dict[str, float]:
        """Figures the model measured while training, keyed 'metric@k' (reported beside the holdout's)."""
        return {}

    def tables(self) -> dict[str, pd.DataFrame]:
        """Extra warehouse tables this model publishes (schema.WAREHOUSE_TABLES names)."""
        return {}

    # ---- the contract ---------------------------------------------------------------
    def fit(self, data: InteractionData) -> Self:
        if data.n_users == 0 or data.matrix.nnz == 0:
            raise RecmillError(f"model '{self.name}' cannot train on data with no interactions")
        self.user_ids_ = data.user_ids.astype(str)
        self.item_ids_ = data.item_ids.astype(str)
        self.seen_ = data.positive.copy().tocsr()  # what the user has: excluded, and their history
        self.seen_.sort_indices()
        self.event_code_ = self._strongest_event(data)
        # the fallback list for users without history: users per item, unless _fit says otherwise
        self.popularity_ = np.bincount(self.seen_.indices, minlength=data.n_items).astype(np.float64)
        items = data.items.set_index(data.items[S.ITEM_ID].astype(str)) if len(data.items) else pd.DataFrame()
        self.item_names_ = text_array(items["name"].reindex(self.item_ids_) if "name" in items else self.item_ids_)
        self.item_names_ = np.where(self.item_names_ == "", self.item_ids_, self.item_names_)
        self.item_categories_ = text_array(items["category"].reindex(self.item_ids_) if "category" in items else [""] * data.n_items)
        self._fit(data)
        self.popular_ = np.lexsort((np.arange(data.n_items), -self.popularity_)).astype(np.int64)
        return self

    def refresh_users(self, data: InteractionData) -> Self:
        """Fold these users' whole history into the model, item side frozen, in place.

        ``data`` holds every event of the users to refresh, built over this model's items
        (InteractionData.build with a catalogue of exactly item_ids_). Their rows of seen_,
        event_code_ and the model's per-user state are recomputed from it; users the model
        has not met are appended. Every other user's rows stay as they were."""
        self._check_fitted()
        if not self.folds_in:
            raise RecmillError(f"model '{self.name}' cannot fold in new events; its lists change at the next retrain")
        if not np.array_equal(data.item_ids, self.item_ids_):
            raise ValueError("refresh_users needs data built over the model's own items")
        part = copy.copy(self)
        part.user_ids_ = data.user_ids.astype(str)
        part.seen_ = data.positive.copy().tocsr()
        part.seen_.sort_indices()
        part.event_code_ = part._strongest_event(data)
        fresh = {"seen_": part.seen_, "event_code_": part.event_code_, **part._user_state(data)}
        new_users = pd.Index(part.user_ids_).difference(pd.Index(self.user_ids_), sort=False)
        self.user_ids_ = np.concatenate([self.user_ids_, np.asarray(new_users, dtype=str)])
        rows = self.user_rows(part.user_ids_)
        for name, value in fresh.items():
            setattr(self, name, with_rows(getattr(self, name), rows, value, len(self.user_ids_)))
        return self

    def recommend(self, users, k: int = 10, exclude_seen: bool = True, reasons: bool = False) -> pd.DataFrame:
        """Top-k items for each user, best first; rank starts at 1."""
        self._check_fitted()
        users = pd.Index(pd.unique(np.asarray(list(users), dtype=object).astype(str)))
        rows = self.user_rows(users)
        known = rows >= 0
        frames = []
        known_users, known_rows = users[known], rows[known]
        step = self._batch_size()
        with steps(f"{self.name}: lists of {len(known_rows):,} users", -(-len(known_rows) // step)) as advance:
            for start in range(0, len(known_rows), step):
                batch = known_rows[start : start + step]
                top, top_scores, ranked = self._top_explained(batch, k, exclude_seen) if reasons else (*self._top(batch, k, exclude_seen), None)
                frames.append(self._frame(known_users[start : start + step], batch, top, top_scores, reasons, ranked))
                advance()
        cold = users[~known]
        if len(cold):
            top = np.tile(self.popular_[:k], (len(cold), 1))
            frames.append(self._frame(cold, None, top, self.popularity_[top], reasons))
        if not frames:
            return pd.DataFrame(columns=RECOMMENDATION_COLUMNS + (["reason"] if reasons else []))
        out = pd.concat(frames, ignore_index=True)
        order = pd.Index(users).get_indexer(out[S.USER_ID])
        return out.iloc[np.lexsort((out["rank"].to_numpy(), order))].reset_index(drop=True)

    def top_items(self, rows: np.ndarray, k: int, exclude_seen: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Each known user's (row numbers) k best items: column numbers and scores, best first,
        -inf where there are fewer; what a model holding others (two_stage) asks of them."""
        self._check_fitted()
        rows = np.asarray(rows, dtype=np.int64)
        step = self._batch_size()
        parts = [self._top(rows[start : start + step], k, exclude_seen) for start in range(0, len(rows), step)]
        if not parts:
            return np.zeros((0, k), dtype=np.int64), np.zeros((0, k))
        return np.concatenate([t for t, _ in parts]), np.concatenate([s for _, s in parts])

    def reasons_for(self, rows: np.ndarray, items: list[np.ndarray]) -> list[list[str]]:
        """A short why for each of these items (column numbers) of each known user (row numbers)."""
        self._check_fitted()
        return self._batch_reasons(np.asarray(rows, dtype=np.int64), [np.asarray(i, dtype=np.int64) for i in items])

    def similar_items(self, items=None, k: int = 10) -> pd.DataFrame:
        """The k most similar items to each given item (all items when None), excluding itself."""
        self._check_fitted()
        cols = np.arange(len(self.item_ids_)) if items is None else self.item_cols(items)
        cols = cols[cols >= 0]
        frames = []
        step = self._batch_size()
        for start in range(0, len(cols), step):
            batch = cols[start : start + step]
            top, scores = self._similar(batch, k)
            valid = np.isfinite(scores)
            n = valid.sum(axis=1)
            frames.append(
                pd.DataFrame(
                    {
                        S.ITEM_ID: np.repeat(self.item_ids_[batch], n),
                        "similar_item_id": self.item_ids_[top[valid]],
                        "rank": ranks(n),
                        "score": scores[valid],
                    }
                )
            )
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=SIMILAR_COLUMNS)

    def save(self, path: Path | str) -> Path:
        self._check_fitted()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        meta = {"format": FORMAT_VERSION, "model": self.name, "seed": self.seed, "config": self.config.model_dump(mode="json")}
        (path / "config.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
        arrays = {key: array for name in (*BASE_STATE, *self.state) for key, array in _packed(name, getattr(self, name)).items()}
        np.savez(path / "state.npz", **arrays)
        self._save_extra(path)
        (path / HASHES).write_text(json.dumps(file_hashes(path), indent=2, sort_keys=True))
        return path

    @classmethod
    def load(cls, path: Path | str) -> Self:
        path = Path(path)
        if (path / HASHES).is_file():  # first: the files below are read only once they are what was saved
            check_integrity(path)
        meta = json.loads((path / "config.json").read_text())
        if meta.get("model") != cls.name:
            raise RecmillError(f"{path} holds model '{meta.get('model')}', not '{cls.name}'")
        if meta.get("format") != FORMAT_VERSION:
            raise RecmillError(f"{path}: model format {meta.get('format')} is not supported (expected {FORMAT_VERSION})")
        if not (path / HASHES).is_file():
            raise IntegrityError(f"{path}: no {HASHES}, so its files cannot be trusted to be what was saved")
        model = cls(cls.Config.model_validate(meta["config"]), seed=meta["seed"])
        with np.load(path / "state.npz", allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        for name in (*BASE_STATE, *cls.state):
            setattr(model, name, _unpacked(name, arrays))
        model._load_extra(path)
        return model

    # ---- helpers --------------------------------------------------------------------
    def user_rows(self, user_ids) -> np.ndarray:
        """Row numbers of these user ids, -1 for unknown ones.

        The id index is built once per user_ids_ array (fold-in may replace it), so a
        one-user lookup does not pay for indexing every user."""
        if getattr(self, "_indexed_users", None) is not self.user_ids_:
            self._user_index, self._indexed_users = pd.Index(self.user_ids_), self.user_ids_
        return self._user_index.get_indexer(_id_index(user_ids))

    def item_cols(self, item_ids) -> np.ndarray:
        """Column numbers of these item ids, -1 for unknown ones."""
        if getattr(self, "_indexed_items", None) is not self.item_ids_:
            self._item_index, self._indexed_items = pd.Index(self.item_ids_), self.item_ids_
        return self._item_index.get_indexer(_id_index(item_ids))

    def _batch_size(self) -> int:
        return max(1, SCORE_CELLS // max(1, len(self.item_ids_)))

    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "item_ids_")

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(f"model '{self.name}' is not fitted: call fit() or load() first")

    def _strongest_event(self, data: InteractionData) -> sp.csr_matrix:
        """Per (user, item) of seen_, the strongest event type seen (for the reasons' verbs)."""
        codes, _ = data.pair_events(self.seen_)
        return sp.csr_matrix((codes, self.seen_.indices, self.seen_.indptr), shape=self.seen_.shape)

    def history(self, row: int) -> np.ndarray:
        """Column numbers of the items this user has (seen_'s row, without slicing a sparse matrix)."""
        return self.seen_.indices[self.seen_.indptr[row] : self.seen_.indptr[row + 1]]

    def _popular_reason(self, col: int) -> str:
        category = self.item_categories_[col]
        return f"popular in {category}" if category else "popular with other customers"

    def _nearest_history_reasons(
        self, row: int, items: np.ndarray, history: np.ndarray, similarity: np.ndarray, positive_only: bool = False
    ) -> list[str]:
        """'because you bought X and Y' for each item: the two differently named items of the
        user's history (column numbers, ascending) most similar to it (items x history), a
        tie going to the first in the history. With positive_only, only the items more
        similar than orthogonal; an item with none gets its popularity as the reason."""
        if len(history) == 0:
            return [self._popular_reason(col) for col in items]
        similarity = np.asarray(similarity, dtype=np.float64)
        if not np.isfinite(similarity).all():  # argmax's order below is a sort's only for finite values
            return [self._sorted_history_reason(row, col, history, s, positive_only) for col, s in zip(items, similarity)]
        names, codes = self.item_names_[history], self._event_codes(row, history)
        at = np.arange(len(items))
        first = similarity.argmax(axis=1)  # the first of equal maxima: the history's order breaks ties
        other_name = names[None, :] != names[first][:, None]
        second = np.where(other_name, similarity, -np.inf).argmax(axis=1)
        has_first = similarity[at, first] > 0 if positive_only else np.ones(len(items), bool)
        has_second = other_name[at, second] & (similarity[at, second] > 0 if positive_only else True)
        out = []
        names, codes = names.tolist(), codes.tolist()  # Python values: a list is read per item, a million times a publish
        for col, a, b, one, two in zip(items.tolist(), first.tolist(), second.tolist(), has_first.tolist(), has_second.tolist()):
            if not one:
                out.append(self._popular_reason(col))
                continue
            closest = (a, b) if two else (a,)
            out.append(self._because([names[j] for j in closest], [codes[j] for j in closest]))
        return out

    def _sorted_history_reason(self, row: int, col: int, history: np.ndarray, similarity: np.ndarray, positive_only: bool) -> str:
        order = np.argsort(-similarity, kind="stable")
        closest = history[order]
        if positive_only:
            closest = closest[similarity[order] > 0]
        return self._history_reason(row, closest) if len(closest) else self._popular_reason(col)

    def _event_codes(self, row: int, cols: np.ndarray) -> np.ndarray:
        """The user's strongest event with each of these items (event_code_; 0 for none)."""
        span = slice(self.event_code_.indptr[row], self.event_code_.indptr[row + 1])
        had, codes = self.event_code_.indices[span], self.event_code_.data[span]
        if len(had) == 0:
            return np.zeros(len(cols), np.int64)
        order = np.argsort(had, kind="stable")
        at = np.minimum(np.searchsorted(had[order], cols), len(had) - 1)
        return np.where(had[order][at] == cols, codes[order][at], 0).astype(np.int64)

    def _history_reason(self, row: int, history_cols) -> str:
        """'because you bought X and Y': the first two differently named items of this
        user's history, given best first (two products may share a name)."""
        named: dict[str, int] = {}  # name -> the first column of that name
        for col in history_cols:
            named.setdefault(self.item_names_[col], int(col))
            if len(named) == 2:
                break
        return self._because(list(named), self._event_codes(row, np.fromiter(named.values(), np.int64)))

    @staticmethod
    def _because(names, codes) -> str:
        """'because you bought X and rated Y' of these history items (names, event codes), a verb said once for a run."""
        parts, last_verb = [], None
        for name, code in zip(names, codes):
            verb = VERBS[int(code)]
            parts.append(name if verb == last_verb else f"{verb} {name}")
            last_verb = verb
        return "because you " + " and ".join(parts)

    def _frame(self, users, rows, top, top_scores, reasons: bool, ranked=None) -> pd.DataFrame:
        valid = np.isfinite(top_scores)
        n = valid.sum(axis=1)
        frame = pd.DataFrame(
            {
                S.USER_ID: np.repeat(np.asarray(users, dtype=object), n),
                S.ITEM_ID: self.item_ids_[top[valid]],
                "rank": ranks(n),
                "score": top_scores[valid],
            }
        )
        if reasons:
            lists = [top[i][valid[i]] for i in range(len(users))]
            if rows is None:
                texts = [[self._popular_reason(c) for c in items] for items in lists]
            else:
                texts = self._batch_reasons(np.asarray(rows), lists, ranked)
            frame["reason"] = [text for user_texts in texts for text in user_texts]
        return frame


def _id_index(ids) -> pd.Index:
    """Ids of any kind (a list, array or Series; numbers or strings) as an index of strings."""
    if isinstance(getattr(ids, "dtype", None), pd.StringDtype):  # already strings: no Python object per id
        return pd.Index(ids)
    return pd.Index(np.asarray(list(ids), dtype=object).astype(str))


# what every fitted model holds (Recommender.fit), saved before its own state
BASE_STATE = ("user_ids_", "item_ids_", "seen_", "event_code_", "popular_", "popularity_", "item_names_", "item_categories_")


def _packed(name: str, value) -> dict[str, np.ndarray]:
    """An attribute as plain arrays for state.npz: a sparse matrix as its CSR parts and shape."""
    if sp.issparse(value):
        m = value.tocsr()
        return {f"{name}.data": m.data, f"{name}.indices": m.indices, f"{name}.indptr": m.indptr, f"{name}.shape": np.asarray(m.shape)}
    return {name: np.asarray(value)}


def _unpacked(name: str, arrays: dict[str, np.ndarray]):
    """The attribute _packed stored under this name (a scalar comes back as a numpy scalar)."""
    if f"{name}.shape" in arrays:
        parts = (arrays[f"{name}.data"], arrays[f"{name}.indices"], arrays[f"{name}.indptr"])
        return sp.csr_matrix(parts, shape=tuple(arrays[f"{name}.shape"]))
    value = arrays[name]
    return value[()] if value.ndim == 0 else value


HASHES = "hashes.json"  # every file a save wrote -> its sha256, checked by load


def file_hashes(path: Path) -> dict[str, str]:
    """The sha256 of every file under a saved model's folder (but the hash list), by relative path."""
    def sha256(file: Path) -> str:
        digest = hashlib.sha256()
        with open(file, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()

    files = sorted(f for f in path.rglob("*") if f.is_file() and f.name != HASHES)
    return {f.relative_to(path).as_posix(): sha256(f) for f in files}


def check_integrity(path: Path) -> None:
    """Raise IntegrityError when a file the save listed in hashes.json is missing or changed since."""
    expected = json.loads((path / HASHES).read_text())
    actual = file_hashes(path)
    changed = sorted(name for name, digest in expected.items() if actual.get(name) != digest)
    if changed:
        raise IntegrityError(f"{path}: changed or missing since the model was saved: {', '.join(changed)}")


def saved_state(path: Path | str, *names: str) -> tuple:
    """These attributes of a saved model's state (item_ids_, seen_, ...), read without
    loading the rest: a caller that needs a large model's ids does not hold it too."""
    with np.load(Path(path) / "state.npz", allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files if k.split(".")[0] in names}
    return tuple(_unpacked(name, arrays) for name in names)


def saved_item_ids(path: Path | str) -> np.ndarray:
    """A saved model's item ids (its columns)."""
    return saved_state(path, "item_ids_")[0]


def saved_format(path: Path | str) -> int | None:
    """The format a saved model's files are in (FORMAT_VERSION when this recmill wrote them)."""
    config = Path(path) / "config.json"
    return json.loads(config.read_text()).get("format") if config.is_file() else None


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Each row scaled to length 1 (zero rows stay zero): cosines become dot products."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms == 0, 1, norms)


def with_rows(matrix, rows: np.ndarray, values, n_rows: int):
    """A per-user attribute (dense array or CSR matrix, a row per user) grown to n_rows
    (empty or zero rows appended) with these rows replaced by ``values``' rows, in order.
    Stored zeros are kept: some sparse attributes carry a code of 0 in their pattern."""
    if sp.issparse(matrix):
        matrix, values = matrix.tocsr(), sp.csr_matrix(values, dtype=matrix.dtype)
        grown = sp.vstack([matrix, sp.csr_matrix((n_rows - matrix.shape[0], matrix.shape[1]), dtype=matrix.dtype), values], format="csr")
        order = np.arange(n_rows)
        order[rows] = n_rows + np.arange(len(rows))
        out = grown[order]
        out.sort_indices()
        return out
    matrix = np.asarray(matrix)
    out = np.zeros((n_rows, *matrix.shape[1:]), dtype=matrix.dtype)
    out[: len(matrix)] = matrix
    out[rows] = values
    return out


def mask_seen(scores: np.ndarray, seen: sp.csr_matrix) -> None:
    """Set to -inf, in place, each row's scores of the columns its row of ``seen`` holds."""
    scores[np.repeat(np.arange(seen.shape[0]), np.diff(seen.indptr)), seen.indices] = -np.inf


def ranks(counts: np.ndarray) -> np.ndarray:
    """1..c for each row's count c, concatenated: the rank column of row-wise top lists."""
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    return (np.arange(starts.size) - starts + 1).astype(np.int32)


def dot_scores(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """``left @ right.T`` in float32, multiplied by torch: top_k runs on torch's threads next,
    and numpy's BLAS threads, still spinning after a product of their own, would hold the
    cores against it (the top-k of a batch then took twice as long)."""
    import torch

    product = torch.from_numpy(np.ascontiguousarray(left, dtype=np.float32)) @ torch.from_numpy(np.ascontiguousarray(right, dtype=np.float32)).T
    return product.numpy()


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Column numbers and scores of each row's k best, best first.

    Ties are ordered by column number among the k chosen; which of several items tied at
    the k-th score get in is up to torch.topk (repeatable, not by column number), which
    picks them a row per thread, five to nine times as fast as numpy's argpartition."""
    import torch

    k = min(k, scores.shape[1])
    if k < scores.shape[1]:
        part = torch.topk(torch.from_numpy(np.ascontiguousarray(scores)), k, dim=1, sorted=False).indices.numpy()
    else:
        part = np.tile(np.arange(scores.shape[1]), (len(scores), 1))
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -part_scores), axis=1)
    top = np.take_along_axis(part, order, axis=1)
    return top, np.take_along_axis(scores, top, axis=1)
