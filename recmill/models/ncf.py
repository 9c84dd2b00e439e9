"""Hybrid neural collaborative filter: collaborative embeddings and content features in one network.

Network. The collaborative branch is a user and an item embedding of ``embedding_dim``.
The content branch passes each side's features through a dense layer with ReLU:
``user_dense`` units over the user features, ``item_dense`` units over the item features.
The fusion concatenates [user embedding, user dense, item embedding, item dense] and runs
it through the ``hidden`` layers (ReLU each, dropout after all but the last) to one output;
its sigmoid is the score. Features are built from the data the network trains on and
only when the data has them (a missing attribute is left out, never filled in):

- user: one-hot age group (``age_group``, or ``age`` in bins), location, and customer
  segment (a SegmentsRecommender with the default SegmentsConfig and the same seed);
  purchases (positive events, log) and average price of the items bought; recency and
  frequency, the segments' RFM definitions scaled to 0-1; the favourite category (most
  positive events) through a category embedding of ``category_embedding_dim``, shared
  with the items.
- item: category embedding; brand embedding of ``brand_embedding_dim``; price percentile;
  popularity (users who have it, log); average rating (with rating events); conversion
  rate (users who have it over users with any event on it, smoothed; when some events
  are not positive); trending (events in the last TREND_DAYS days, log); recency.

Every numeric feature is min-max scaled to 0-1 after its transform (log1p for counts,
1 - scaled days for recency); a value missing for some users or items gets the median;
feature_stats.json keeps the constants.

Training. Each user's last ``valid_fraction`` of events validates; the network trains on
the rest. Every epoch each pair the user has is a positive (label 1) with ``negatives``
items drawn uniformly from those the user does not have (label 0), redrawn each epoch.
Loss: MSE of the sigmoid (mse), cross-entropy (bce), or for bpr -log sigmoid(positive -
negative logit) over (positive, negative) pairs; Adam with weight decay, ``batch_size``
samples a step. An embedding table above ``sparse_above_rows`` rows (users at Instacart
size) gets sparse gradients and SparseAdam without weight decay, so a step costs the same
at 6,000 users or 200,000.
ReduceLROnPlateau and early stopping follow the validation NDCG@10 (held-out items the
user did not have before, ranked among the items the user does not have, or among a
seeded sample of ``valid_items`` of them in a larger catalogue). Since one epoch's NDCG
on a thousand users moves by a few percent by chance, early stopping counts an epoch as a
gain only when it beats the last gain by ``min_improvement`` (a share), and the learning
rate drops after ``lr_patience`` epochs without beating the best by that share; the best
epoch's weights are the model. (On ML-100K, with 0.02 and patience 4 training stopped
after 12 epochs at NDCG@10 0.170; waiting for any gain took 19 epochs for 0.170; keeping
only epochs with 5% gains as the best, 0.161.) With ``checkpoint_dir`` set, every epoch writes a checkpoint (weights, optimiser,
scheduler, random states, history) and a training with the same data, config and seed
resumes from it. On CPU a rerun gives the identical model: seeded torch and numpy
generators, no data loader, one thread.

Scoring all items splits the first fusion layer into a user part and an item part, each
computed once, and runs the rest over chunks of users x items.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from recmill import schema as S
from recmill.config import InteractionsConfig, NCFConfig
from recmill.data.interactions import InteractionData
from recmill.data.split import label_positives, label_split
from recmill.errors import RecmillError
from recmill.models.base import Recommender, mask_seen, top_k, unit_rows
from recmill.models.ncf_features import Features, build_features
from recmill.models.ncf_network import NCFNet
from recmill.models.ncf_training import (
    CHECKPOINT,
    VALID_K,
    epoch_samples,
    fingerprint,
    optimizers,
    reproducible,
    resolve_device,
    resume,
    save_checkpoint,
    subnormals_flushed,
    train_epoch,
    validation_columns,
    validation_ndcg,
)
from recmill.progress import steps

log = logging.getLogger("recmill")


class NCFRecommender(Recommender):
    name = "ncf"
    Config = NCFConfig
    heavy = True

    def _fit(self, data: InteractionData) -> None:
        cfg = self.config
        self.device_ = resolve_device(cfg.device)
        earlier_events, valid_events = label_split(data.events, cfg.valid_fraction)
        held_out = label_positives(earlier_events, valid_events, data.positive_event_types)
        del valid_events
        # the whole catalogue, so the earlier data has the same columns; every user keeps an earlier event, so the same rows
        earlier = InteractionData.build(
            earlier_events, data.catalogue(), data.users, InteractionsConfig(positive_event_types=list(data.positive_event_types))
        )
        del earlier_events  # earlier holds it (most events copied: GBs at Instacart size) and goes once the features are built
        if earlier.positive.nnz == 0:
            raise RecmillError("model 'ncf' found no pairs a user has (bought, rated) to train on")
        self.features_, self.feature_stats_ = build_features(earlier, self.seed)
        positive = earlier.positive
        del earlier
        truth = pd.DataFrame(
            {"r": self.user_rows(held_out[S.USER_ID]), "c": self.item_cols(held_out[S.ITEM_ID])}
        ).groupby("r")["c"].agg(set).to_dict()
        if cfg.valid_max_users is not None and len(truth) > cfg.valid_max_users:
            kept = np.random.default_rng(self.seed).choice(sorted(truth), size=cfg.valid_max_users, replace=False)
            truth = {int(r): truth[r] for r in sorted(kept)}
        started = time.perf_counter()
        with reproducible(self.seed, self.device_):
            self.net_ = NCFNet(cfg, self.features_).to(self.device_)
            self.history_ = self._train(positive, truth)
        self.history_.update(device=str(self.device_), seconds=round(time.perf_counter() - started, 2))
        self.net_.eval()

    def _train(self, positive: sp.csr_matrix, truth: dict[int, set]) -> dict:
        """Epochs until ``epochs`` or ``patience`` epochs without a better validation NDCG@10;
        leaves the best epoch's weights in the network and returns the history."""
        cfg, net, device = self.config, self.net_, self.device_
        valid_cols = validation_columns(truth, positive.shape[1], cfg.valid_items, self.seed)
        steppers = optimizers(net, cfg)
        schedulers = [
            torch.optim.lr_scheduler.ReduceLROnPlateau(
                o, mode="max", factor=cfg.lr_factor, patience=cfg.lr_patience, min_lr=cfg.min_lr, threshold=cfg.min_improvement, threshold_mode="rel"
            )
            for o in steppers
        ]
        rng = np.random.default_rng(self.seed)
        run = {"epoch": 0, "epochs": [], "best_epoch": 0, "best_ndcg": -np.inf, "stale": 0}
        best = None
        path = Path(cfg.checkpoint_dir) / CHECKPOINT if cfg.checkpoint_dir is not None else None
        key = fingerprint(cfg, self.seed, positive, self.features_)
        if path is not None and path.exists():
            run, best = resume(path, key, net, steppers, schedulers, rng, device) or (run, best)
        with steps(f"ncf: up to {cfg.epochs} epochs", cfg.epochs - run["epoch"]) as advance:  # early stopping may end it sooner
            while run["epoch"] < cfg.epochs and run["stale"] < cfg.patience:
                started = time.perf_counter()
                lr = steppers[0].param_groups[0]["lr"]
                samples = [torch.as_tensor(a, device=device) for a in epoch_samples(positive, cfg.negatives, cfg.loss == "bpr", rng, cfg.pairs_per_epoch)]
                loss = train_epoch(net, steppers, samples, cfg.loss, cfg.batch_size)
                # without validation users every epoch counts as the best: training runs all epochs
                ndcg = validation_ndcg(net, positive, truth, device, valid_cols) if truth else None
                run["epoch"] += 1
                if ndcg is None or ndcg > run["best_ndcg"]:  # the best epoch's weights are kept ...
                    run.update(best_epoch=run["epoch"], best_ndcg=-np.inf if ndcg is None else ndcg)
                    best = {k: v.detach().clone() for k, v in net.state_dict().items()}
                if ndcg is None or ndcg > run.get("mark_ndcg", -np.inf) * (1 + cfg.min_improvement):  # ... patience waits for a clear gain
                    run.update(mark_ndcg=-np.inf if ndcg is None else ndcg, stale=0)
                else:
                    run["stale"] += 1
                if ndcg is not None:
                    for scheduler in schedulers:
                        scheduler.step(ndcg)
                seconds = round(time.perf_counter() - started, 3)
                run["epochs"].append({"epoch": run["epoch"], "loss": loss, f"valid_ndcg@{VALID_K}": ndcg, "lr": lr, "seconds": seconds})
                log.info("ncf epoch %d: loss %.4f, valid ndcg@%d %s, lr %.2g", run["epoch"], loss, VALID_K, ndcg, lr)
                if path is not None:
                    save_checkpoint(
                        path,
                        {"fingerprint": key, "run": run, "best": best, "net": net.state_dict(), "optimizers": [o.state_dict() for o in steppers],
                         "schedulers": [sc.state_dict() for sc in schedulers], "torch_rng": torch.get_rng_state(),
                         "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
                         "numpy_rng": rng.bit_generator.state},
                    )
                advance()
        net.load_state_dict(best)
        best_ndcg = run["best_ndcg"] if np.isfinite(run["best_ndcg"]) else None
        return {"epochs": run["epochs"], "best_epoch": run["best_epoch"], f"best_valid_ndcg@{VALID_K}": best_ndcg}

    # ---- scoring --------------------------------------------------------------------
    def _score(self, rows: np.ndarray, cols: np.ndarray | None = None) -> np.ndarray:
        with torch.no_grad(), subnormals_flushed():
            items = None if cols is None else torch.as_tensor(cols, device=self.device_)
            logits = self.net_.score_all(torch.as_tensor(rows, device=self.device_), items)
        return torch.sigmoid(logits.double()).cpu().numpy()  # float64: sigmoids near 1 stay apart

    def _top(self, rows: np.ndarray, k: int, exclude_seen: bool) -> tuple[np.ndarray, np.ndarray]:
        """In a catalogue above ``score_max_items``, the network scores the most popular that
        many items only: every pair costs the fusion layers, and 50k items for 200k users
        would be ten billion of them."""
        limit = self.config.score_max_items
        if limit is None or len(self.item_ids_) <= limit:
            return super()._top(rows, k, exclude_seen)
        cols = np.sort(self.popular_[:limit])
        scores = self._score(rows, cols)
        if exclude_seen:
            mask_seen(scores, self.seen_[rows][:, cols])
        top, top_scores = top_k(scores, k)
        return cols[top], top_scores

    def later_fit_config(self) -> NCFConfig:
        """As many epochs as this fit's early stopping chose (the usual retraining on train +
        valid): at Instacart size a later fit trains a few epochs instead of waiting out its
        patience again."""
        return self.config.model_copy(update={"epochs": max(1, int(self.history_["best_epoch"]))})

    def training_metrics(self) -> dict[str, float]:
        """Epochs run, the best epoch, and its validation NDCG@10 (when there were validation users)."""
        out = {"epochs": float(len(self.history_["epochs"])), "best_epoch": float(self.history_["best_epoch"])}
        best = self.history_[f"best_valid_ndcg@{VALID_K}"]
        return out if best is None else {**out, f"valid_ndcg@{VALID_K}": float(best)}

    def _unit_item_embeddings(self) -> np.ndarray:
        """Item embeddings scaled to length 1, computed again only when the weights changed
        (reasons ask per user; a tensor's _version counts its in-place updates)."""
        weight = self.net_.item_embedding.weight
        of = getattr(self, "_unit_of", None)
        if of is None or of[0] is not weight or of[1] != weight._version:
            self._unit = unit_rows(weight.detach().cpu().numpy().astype(np.float64))
            self._unit_of = (weight, weight._version)
        return self._unit

    def _reasons(self, row: int, items: np.ndarray) -> list[str]:
        """'because you bought X and Y': the history items closest to each item by cosine of
        the item embeddings (closer than orthogonal); else its category's popularity."""
        history = self.history(row)
        vectors = self._unit_item_embeddings()
        similarity = vectors[items] @ vectors[history].T
        similarity[items[:, None] == history[None, :]] = -np.inf  # an item does not explain itself
        return self._nearest_history_reasons(row, items, history, similarity, positive_only=True)

    # ---- persistence ----------------------------------------------------------------
    def _save_extra(self, path: Path) -> None:
        """features.npz (the users' and items' inputs), model.pt (the network's state_dict),
        feature_stats.json and training_history.json."""
        np.savez(path / "features.npz", **self.features_.arrays())
        torch.save({k: v.cpu() for k, v in self.net_.state_dict().items()}, path / "model.pt")
        (path / "feature_stats.json").write_text(json.dumps(self.feature_stats_, indent=2))
        (path / "training_history.json").write_text(json.dumps(self.history_, indent=2))

    def _load_extra(self, path: Path) -> None:
        with np.load(path / "features.npz", allow_pickle=False) as arrays:
            self.features_ = Features.from_arrays({k: arrays[k] for k in arrays.files})
        self.feature_stats_ = json.loads((path / "feature_stats.json").read_text())
        self.history_ = json.loads((path / "training_history.json").read_text())
        self.device_ = resolve_device(self.config.device)
        self.net_ = NCFNet(self.config, self.features_).to(self.device_)
        self.net_.load_state_dict(torch.load(path / "model.pt", weights_only=True, map_location=self.device_))
        self.net_.eval()
