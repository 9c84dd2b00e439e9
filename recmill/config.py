"""Typed settings. params.yaml is read here and nowhere else.

One pydantic model per section; unknown keys are rejected, so a typo in params.yaml or
in a ``--set`` override is an error that names the key, never a silent default.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from recmill.errors import ConfigError
from recmill.runtime import cores

DEFAULT_PARAMS = Path("params.yaml")
Workers = Annotated[int, Field(ge=1)] | Literal["auto"]  # processes at once: a number, or auto (per_core)


def per_core(workers: Workers, parallel: bool) -> int:
    """A number of processes as given, or for auto one per core where the work is worth it, else one."""
    if workers != "auto":
        return workers
    return cores() if parallel else 1


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class PathsConfig(Section):
    data: Path = Field(Path("data"), description="Folder of the canonical tables, splits, fits and models.")
    reports: Path = Field(Path("reports"), description="Folder of the validation, metrics, selection, drift and stage reports.")


class DataConfig(Section):
    source: Literal["synthetic", "instacart", "movielens", "files"] = Field("synthetic", description="Where the data comes from: the built-in synthetic shop, Instacart-format CSVs, MovieLens files, or plain CSV/Parquet files.")
    path: Path | None = Field(Path("data/source"), description="Directory holding the source files (not used by synthetic); dvc.yaml's ingest depends on it.")
    preset: Literal["tiny", "small", "instacart", "instacart_1m", "instacart_4m", "instacart_16m"] = Field(
        "small", description="Size of the synthetic shop (instacart_*: the instacart shop with fewer users, by order lines)."
    )

    @model_validator(mode="after")
    def _path_given(self):
        if self.source != "synthetic" and self.path is None:
            raise ValueError(f"data.path is required when data.source is '{self.source}'")
        return self


class ValidationConfig(Section):
    rating_min: float = Field(0.5, description="Lowest valid rating; a rating event below it fails validation.")
    rating_max: float = Field(5.0, description="Highest valid rating.")
    min_events: int = Field(50, ge=1, description="Fewest events that can train a model.")
    min_users: int = Field(5, ge=1, description="Fewest distinct users that can train a model.")
    min_items: int = Field(5, ge=1, description="Fewest distinct items that can train a model.")
    example_rows: int = Field(5, ge=1, description="Failing rows shown per failed expectation.")


EventType = Literal["view", "cart", "purchase", "rating"]


class InteractionsConfig(Section):
    event_weights: dict[Literal["view", "cart", "purchase"], float] = Field({"view": 1.0, "cart": 3.0, "purchase": 5.0}, description="Weight of one event of each type; a rating event counts with its rating instead.")
    positive_event_types: list[EventType] = Field(["purchase", "rating"], description="Events that mean the user has the item: relevant when held out, left out of their lists when seen (a viewed or carted item may still be recommended).")


class SplitConfig(Section):
    method: Literal["per_user", "global_time"] = Field("per_user", description="per_user: each user's last events are held out; global_time: every event after a date is.")
    test_fraction: float | None = Field(0.2, gt=0, lt=1, description="per_user: each user's last share of events (at least one) held out for test.")
    test_n: int | None = Field(None, ge=1, description="Last N interactions per user instead of a fraction.")
    valid_fraction: float | None = Field(0.1, gt=0, lt=1, description="The same share of what precedes the test slice, held out for validation.")
    valid_n: int | None = Field(None, ge=1, description="Last N interactions before the test slice per user instead of a fraction.")
    min_user_events: int = Field(3, ge=2, description="Users with fewer events stay wholly in train.")
    test_start: datetime | None = Field(None, description="global_time: events at or after this are test.")
    valid_start: datetime | None = Field(None, description="global_time: events from here to test_start are valid.")

    @model_validator(mode="after")
    def _consistent(self):
        if self.method == "global_time" and (self.test_start is None or self.valid_start is None):
            raise ValueError("split.method global_time needs split.test_start and split.valid_start")
        if self.method == "global_time" and self.valid_start >= self.test_start:
            raise ValueError("split.valid_start must be before split.test_start")
        if self.method == "per_user" and self.test_fraction is None and self.test_n is None:
            raise ValueError("split needs test_fraction or test_n")
        return self


class PopularityConfig(Section):
    window_days: float | None = Field(None, gt=0, description="Count only the last N days of events.")


class ALSConfig(Section):
    factors: int = Field(128, ge=1, description="Latent factors per user and item.")
    regularization: float = Field(10.0, ge=0, description="L2 penalty on the factors.")
    alpha: float = Field(1.0, gt=0, description="Confidence = 1 + alpha * f(weighted interactions).")
    confidence: Literal["linear", "log"] = Field("log", description="f(w) in 1 + alpha * f(w): linear w, or log(1 + w).")
    iterations: int = Field(15, ge=1, description="Alternating least-squares sweeps.")


class RandomConfig(Section):
    """Uniformly random unseen items, seeded by the top-level seed: the floor to beat."""


class CategoryConfig(Section):
    top_categories: int = Field(3, ge=1, description="How many of the user's favourite categories to draw from.")


class EASEConfig(Section):
    regularization: float = Field(250.0, gt=0, description="lambda on the diagonal of the Gram matrix.")
    max_items: int = Field(20_000, ge=1, description="Above this catalogue size the items x items matrix is too big: skipped.")


class ContentConfig(Section):
    fields: dict[Literal["name", "description", "category", "tags", "brand"], float] = Field(
        {"name": 1.0, "description": 0.5, "category": 1.0, "tags": 1.0, "brand": 0.5},
        description="Item text fields and their weights in the TF-IDF vector.",
    )
    max_features: int = Field(50_000, ge=1, description="Largest TF-IDF vocabulary.")
    min_df: int = Field(1, ge=1, description="Terms in fewer items than this are dropped.")
    neighbours: int = Field(50, ge=1, description="Similar items kept per item (a sparse top-N, never items x items).")
    recency_half_life_days: float | None = Field(30.0, gt=0, description="Profile weight halves per this many days; None: equal weights.")


class Item2VecConfig(Section):
    sequence: Literal["user", "order"] = Field("user", description="What a sentence is: a user's whole history, or one order.")
    vector_size: int = Field(64, ge=2, description="Dimensions of an item vector.")
    window: int = Field(5, ge=1, description="Items on each side of an item that count as its context.")
    min_count: int = Field(2, ge=1, description="Items seen fewer times get no vector.")
    sg: bool = Field(True, description="Skip-gram (True) or CBOW (False).")
    negative: int = Field(5, ge=0, description="Negative samples per context pair.")
    epochs: int = Field(5, ge=1, description="Passes of word2vec over the sequences.")
    min_sequences: int = Field(10, ge=1, description="Fewest sequences of 2+ items that can train it.")
    max_tokens: int | None = Field(
        2_000_000, ge=1, description="At scale: word2vec trains on a seeded sample of whole sequences holding at most this many items; None: all."
    )
    recency_half_life_days: float | None = Field(None, gt=0, description="A user's profile weights an item by recency, halving per this many days; None: equal weights.")
    exact_index_max_items: int = Field(100_000, ge=1, description="Above this catalogue size an approximate index is used.")
    approximate_index: Literal["ivf", "hnsw"] = Field("hnsw", description="FAISS index used above exact_index_max_items: hnsw or ivf.")
    ivf_lists: int = Field(256, ge=1, description="Inverted lists of the ivf index.")
    ivf_probes: int = Field(16, ge=1, description="Inverted lists searched per query (ivf).")
    hnsw_neighbours: int = Field(32, ge=2, description="Links per node of the hnsw graph (M).")
    hnsw_search_depth: int = Field(64, ge=1, description="Candidates explored per query (hnsw efSearch).")
    popularity_weight: float = Field(
        0.5, ge=0, description="User scores add this times log(1 + users who have the item) to the cosine."
    )


class MFConfig(Section):
    factors: int = Field(64, ge=1, description="Latent factors per user and item.")
    learning_rate: float = Field(0.01, gt=0, description="Step size of the mini-batch gradient descent.")
    regularization: float = Field(0.05, ge=0, description="L2 penalty on factors and biases.")
    epochs: int = Field(30, ge=1, description="Passes over the training pairs.")
    batch_size: int = Field(1024, ge=1, description="Pairs per gradient step.")
    init_std: float = Field(0.05, gt=0, description="Standard deviation of the initial factors.")
    feedback: Literal["auto", "explicit", "implicit"] = Field(
        "auto", description="explicit: fit the ratings; implicit: fit confidence-weighted 1s and sampled 0s; auto: explicit when ratings exist."
    )
    negatives: int = Field(4, ge=0, description="implicit: sampled negatives per positive.")
    pairs_per_epoch: int | None = Field(
        1_000_000, ge=1, description="At scale: pairs of the signal drawn afresh each epoch (with their negatives); None: all of them."
    )
    fold_in_regularization: float = Field(10.0, ge=0, description="Ridge penalty of the fold-in solve for a user's bias and factors.")


class SegmentsConfig(Section):
    k: int | None = Field(None, ge=2, description="A fixed number of segments; None: chosen by silhouette.")
    k_min: int = Field(2, ge=2, description="Fewest segments tried when k is chosen by silhouette.")
    k_max: int = Field(8, ge=2, description="Most segments tried when k is chosen by silhouette.")
    silhouette_sample: int = Field(5_000, ge=100, description="Users sampled to score each k.")
    top_categories: int = Field(8, ge=1, description="Category-share features: the most bought categories.")
    items_per_segment: int = Field(200, ge=1, description="Popular items kept per segment for recommendations.")

    @model_validator(mode="after")
    def _range(self):
        if self.k_min > self.k_max:
            raise ValueError("segments.k_min must not exceed k_max")
        return self


class GradientBoostingConfig(Section):
    num_leaves: int = Field(31, ge=2, description="LightGBM: leaves per tree.")
    learning_rate: float = Field(0.05, gt=0, description="LightGBM: shrinkage per tree.")
    n_estimators: int = Field(300, ge=1, description="LightGBM: most trees (early stopping may use fewer).")
    min_child_samples: int = Field(20, ge=1, description="LightGBM: fewest rows in a leaf.")
    early_stopping_rounds: int = Field(30, ge=1, description="Stop when the validation score has not improved for this many rounds.")


class TwoStageConfig(Section):
    generators: list[str] = Field(
        ["als", "ease", "item2vec", "content", "popularity"], description="Candidate sources: models trained with their own settings."
    )
    candidates_per_generator: int = Field(100, ge=1, description="Candidates each generator proposes per user for the ranker.")
    keep: int = Field(50, ge=1, description="Candidates per user that stage 1 keeps for the ranker.")
    label_fraction: float = Field(0.2, gt=0, lt=1, description="Each user's last share of training events that labels the candidates.")
    ranker_valid_users: float = Field(0.2, gt=0, lt=1, description="Share of users whose labels stop the ranker early.")
    max_train_users: int | None = Field(
        10_000, ge=1, description="At scale: the stages learn from the candidates of a seeded sample of this many users; None: all."
    )
    stage1_negatives: float = Field(
        0.25, gt=0, le=1, description="Share of the unlabelled candidates stage 1 learns from (a seeded sample); the ranker sees them all."
    )
    stage1: GradientBoostingConfig = Field(default_factory=lambda: GradientBoostingConfig(n_estimators=200))
    ranker: GradientBoostingConfig = Field(default_factory=lambda: GradientBoostingConfig(num_leaves=7, min_child_samples=100))

    @model_validator(mode="after")
    def _generators(self):
        if "two_stage" in self.generators or not self.generators:
            raise ValueError("models.two_stage.generators must name other models")
        return self


class ReorderConfig(Section):
    booster: GradientBoostingConfig = Field(default_factory=lambda: GradientBoostingConfig(n_estimators=500))
    valid_users: float = Field(0.2, gt=0, lt=1, description="Share of users whose labels stop the booster early.")
    max_per_user: int = Field(50, ge=1, description="buy_again rows kept per user, most probable first.")
    max_train_users: int | None = Field(
        50_000, ge=1, description="At scale: the booster learns from the pairs of a seeded sample of this many users; None: all."
    )
    memory_limit: str = Field("4GB", description="DuckDB memory limit while building the features.")
    threads: int = Field(
        2, ge=1, description="DuckDB threads while building the features (the features do not depend on it)."
    )


class NCFConfig(Section):
    embedding_dim: int = Field(50, ge=1, description="User and item embeddings of the collaborative branch.")
    user_dense: int = Field(64, ge=1, description="Units of the dense layer over the user features.")
    item_dense: int = Field(64, ge=1, description="Units of the dense layer over the item features.")
    category_embedding_dim: int = Field(10, ge=1, description="Dimensions of the item category embedding.")
    brand_embedding_dim: int = Field(10, ge=1, description="Dimensions of the item brand embedding.")
    hidden: list[int] = Field([128, 64, 32], min_length=1, description="Fusion layers after the concatenation.")
    dropout: float = Field(0.2, ge=0, lt=1, description="After every fusion layer but the last.")
    loss: Literal["mse", "bce", "bpr"] = Field("mse", description="mse or bce on sampled (user, item, label) pairs, or bpr on (user, item had, item not had) triples.")
    negatives: int = Field(4, ge=1, description="Sampled negatives per positive, resampled each epoch.")
    learning_rate: float = Field(1e-3, gt=0, description="Adam's initial learning rate.")
    betas: tuple[float, float] = Field((0.9, 0.999), description="Adam's moment decay rates.")
    weight_decay: float = Field(1e-5, ge=0, description="Adam's weight decay on the dense parameters.")
    lr_factor: float = Field(0.5, gt=0, lt=1, description="ReduceLROnPlateau factor.")
    lr_patience: int = Field(3, ge=0, description="ReduceLROnPlateau patience, in epochs.")
    min_lr: float = Field(1e-6, ge=0, description="Floor of the learning rate that ReduceLROnPlateau lowers.")
    batch_size: int = Field(256, ge=1, description="Samples per gradient step.")
    epochs: int = Field(50, ge=1, description="Most epochs; early stopping usually ends sooner.")
    patience: int = Field(3, ge=1, description="Epochs without a clear gain in validation NDCG@10 before stopping.")
    min_improvement: float = Field(
        0.02, ge=0,
        description="Patience and the learning rate wait for a validation NDCG@10 this share above the last clear gain (the best epoch is kept either way).",
    )
    valid_fraction: float = Field(0.1, gt=0, lt=1, description="Each user's last share of training events that validates each epoch.")
    # At scale: bounds on a step, on validation, on an epoch and on scoring that small data never reaches (docs/ncf.md).
    sparse_above_rows: int = Field(
        20_000, ge=0, description="An embedding table with more rows gets sparse updates (SparseAdam, no weight decay): a step's cost stays flat."
    )
    valid_max_users: int | None = Field(1_000, ge=1, description="Validation NDCG on at most this many users (a seeded sample); None: all.")
    score_max_items: int | None = Field(
        10_000, ge=1, description="In a larger catalogue the network scores only the most popular this many items; None: every item."
    )
    valid_items: int | None = Field(
        2_000, ge=1, description="Validation ranks among a seeded sample of this many items (and the held-out ones) in a larger catalogue; None: all."
    )
    pairs_per_epoch: int | None = Field(
        100_000, ge=1, description="Pairs users have sampled afresh each epoch (each with its negatives); None: all of them."
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA when available.")
    checkpoint_dir: Path | None = Field(None, description="Per-epoch checkpoints here let an interrupted training resume.")


class ModelsConfig(Section):
    popularity: PopularityConfig = Field(default_factory=PopularityConfig)
    random: RandomConfig = Field(default_factory=RandomConfig)
    category: CategoryConfig = Field(default_factory=CategoryConfig)
    als: ALSConfig = Field(default_factory=ALSConfig)
    ease: EASEConfig = Field(default_factory=EASEConfig)
    content: ContentConfig = Field(default_factory=ContentConfig)
    item2vec: Item2VecConfig = Field(default_factory=Item2VecConfig)
    mf: MFConfig = Field(default_factory=MFConfig)
    segments: SegmentsConfig = Field(default_factory=SegmentsConfig)
    two_stage: TwoStageConfig = Field(default_factory=TwoStageConfig)
    reorder: ReorderConfig = Field(default_factory=ReorderConfig)
    ncf: NCFConfig = Field(default_factory=NCFConfig)


class TrainConfig(Section):
    models: list[str] = Field(
        ["popularity", "random", "category", "als", "ease", "content", "item2vec", "mf", "segments", "two_stage", "reorder", "ncf"],
        description="The models to train, evaluate and compare (names from the model catalogue).",
    )
    workers: Workers = Field(
        "auto",
        description="Models trained (then evaluated, then refitted) at once, each in a process of its own holding its own copy "
        "of the events: a number, or auto: one per core while the events are at most parallel_max_events, else one.",
    )
    parallel_max_events: int = Field(
        10_000_000, ge=0, description="With workers auto: above this many events one model at a time (memory, not cores, binds)."
    )
    refit: Literal["auto", "full", "refresh"] = Field(
        "auto",
        description="How a model gets its test fit (train + valid) and its fit on all the data: full, trained again on "
        "their events; refresh, the fit before it (valid, then test) with every user's whole history folded in, the item "
        "side as that fit learned it: the cost of a user step, and lists a few percent worse "
        "(reports/benchmarks/refit_refresh_*.md); auto: full up to refresh_above_events events, refresh above. Models "
        "that cannot fold in train again, where the others refresh as long as their fit before found enough (ncf: the "
        "epochs its early stopping chose).",
    )
    refresh_above_events: int = Field(
        10_000_000, ge=0, description="With refit auto: above this many events a model trains once and is refreshed after."
    )

    def refreshes(self, events: int) -> bool:
        """Whether later fits are refreshes of the one before on data of this many events."""
        return self.refit == "refresh" or (self.refit == "auto" and events > self.refresh_above_events)

    def worker_count(self, events: int) -> int:
        """How many models run at once on data of this many events."""
        return per_core(self.workers, events <= self.parallel_max_events)

    @model_validator(mode="after")
    def _known(self):
        if not self.models:
            raise ValueError("train.models is empty")
        return self


class EvaluateConfig(Section):
    k: list[int] = Field([5, 10, 20], description="Cut-offs every ranking metric is computed at.")
    metrics: list[str] = Field(["precision", "recall", "ndcg", "map", "hit_rate", "mrr", "coverage"], description="Ranking metrics computed per model (names from the metric catalogue).")
    selection_metric: str = Field("ndcg", description="The metric the challenger is chosen by and the gate compares.")
    selection_k: int = Field(10, description="The cut-off of selection_metric.")
    baseline: str = Field("popularity", description="The model every other is compared with, in percent.")
    fairness_attributes: list[str] = Field(
        ["age_group", "gender", "segment"], description="User attributes (users table columns, or 'segment') whose groups are compared."
    )
    long_tail_share: float = Field(
        0.8, gt=0, lt=1, description="Items outside the most popular ones that hold this share of interactions are the long tail."
    )
    light_user_events: int = Field(10, ge=1, description="Users with fewer training events than this are light (none: new).")
    heavy_user_events: int = Field(50, ge=1, description="Users with at least this many training events are heavy.")
    personalisation_sample: int = Field(2_000, ge=2, description="Users sampled to compare lists pairwise.")
    max_users: int | None = Field(
        20_000, ge=1, description="Held-out users scored: a seeded sample when there are more (null: all of them)."
    )
    workers: Workers = Field(
        "auto",
        description="Where the models train one at a time (train.workers), the processes that evaluate them, each holding "
        "no training data: one beside each lighter fit, this many after the training (a number, or auto: one per core). "
        "Otherwise they are evaluated in the training's pool.",
    )

    def worker_count(self) -> int:
        """How many processes evaluate the models after a training one model at a time."""
        return per_core(self.workers, True)

    @model_validator(mode="after")
    def _known(self):
        if self.light_user_events > self.heavy_user_events:
            raise ValueError("evaluate.light_user_events must not exceed heavy_user_events")
        return self


class GateConfig(Section):
    """When a run's challenger replaces the champion."""

    margin: float = Field(0.01, ge=0, description="Relative gain in the selection metric the challenger needs (0.01: 1%).")
    test: Literal["bootstrap", "paired_t"] = Field("bootstrap", description="Paired test over users of challenger against champion: bootstrap, or paired t-test.")
    level: float = Field(0.05, gt=0, lt=1, description="Significance level of the paired test over users.")
    bootstrap_samples: int = Field(2_000, ge=100, description="Resamples of the bootstrap test.")
    max_coverage_drop: float = Field(0.2, ge=0, le=1, description="Guardrail: coverage may fall by at most this share of the champion's.")
    max_diversity_drop: float = Field(0.2, ge=0, le=1, description="Guardrail: diversity may fall by at most this share.")
    max_fairness_gap: float = Field(0.2, ge=0, le=1, description="Guardrail: no equal-opportunity gap may exceed this.")
    keep_versions: int = Field(5, ge=1, description="Versions kept per model; older ones are archived.")
    ab_test: bool = Field(False, description="Publish the challenger's lists beside the champion's for an A/B test.")
    ab_share: float = Field(0.5, gt=0, lt=1, description="Share of users assigned to the challenger.")
    ab_salt: str = Field("recmill", description="Salt of the user hash that assigns A/B variants (change it to reshuffle).")


class DriftConfig(Section):
    """Drift of this run's data and lists against the champion's."""

    column_threshold: float = Field(
        0.05, gt=0, lt=1,
        description="p-value at or below which one column drifted (evidently's small-sample tests: K-S, chi-square, Z); its distance tests keep their 0.1.",
    )
    drifted_share: float = Field(0.5, gt=0, le=1, description="Share of drifted columns that makes a data set drifted.")
    severe_share: float = Field(0.75, gt=0, le=1, description="Share of drifted columns that is severe: blocks automatic promotion.")
    max_overlap_drop: float = Field(0.5, ge=0, le=1, description="Prediction drift: severe when the mean Jaccard overlap of users' previous and new lists is below this.")
    sample: int = Field(50_000, ge=100, description="Rows sampled per data set for the drift tests.")


class DuckDBConfig(Section):
    """DuckDB, for the relational work on the canonical tables: validation, the split,
    features and drift profiles run out of core under these limits."""

    memory_limit: str = Field("4GB", pattern=r"^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$", description="DuckDB's memory_limit, e.g. 4GB.")
    threads: int = Field(2, ge=1, description="Threads DuckDB uses.")
    spill: Path | None = Field(None, description="Folder DuckDB spills to; None: <paths.data>/spill.")


class TrackingConfig(Section):
    uri: str = Field("sqlite:///mlflow/mlflow.db", description="An MLflow store: sqlite:///file, or a tracking server's http(s) URL.")
    artifacts: Path = Field(Path("mlflow/artifacts"), description="Where a local store keeps artifacts (a tracking server keeps its own).")
    experiment: str = Field("recmill", description="MLflow experiment the runs are logged to.")


class PublishConfig(Section):
    enabled: bool = Field(True, description="False: the run stops before the warehouse and the registry (an experiment, say).")
    warehouse: Path = Field(Path("warehouse/recmill.duckdb"), description="The DuckDB file the tables are published to.")
    k: int = Field(20, ge=1, description="Recommendations published per user.")
    exclude_seen: bool = Field(True, description="Leave out the items a user has (interactions.positive_event_types) from their lists.")
    similar_k: int = Field(20, ge=1, description="Similar items published per item and model.")
    workers: Workers = Field(
        "auto",
        description="Processes that make the published lists, each loading the model and listing shards of the users: "
        "a number, or auto: one per core above parallel_min_users users, else the publish's own process.",
    )
    parallel_min_users: int = Field(
        50_000, ge=0, description="With workers auto: from this many users on, the lists are made by one process per core."
    )

    def worker_count(self, users: int) -> int:
        """How many processes make the lists of this many users."""
        return per_core(self.workers, users >= self.parallel_min_users)


class RefreshConfig(Section):
    increments: Path = Field(
        Path("data/increments"),
        description="Event files (CSV or Parquet, the files source's event columns) that arrive between retrains: "
        "`recmill refresh` folds the new ones into their users' lists; the next retrain learns from them with the source's.",
    )
    cron: str = Field("0 * * * *", description="When the refresh deployment runs (minute hour day month weekday): hourly.")


class ScheduleConfig(Section):
    deployment: str = Field("weekly", min_length=1, description="The deployment of weekly_retrain that `recmill schedule` serves.")
    cron: str = Field("0 3 * * 1", description="When it runs (minute hour day month weekday): Mondays at 03:00.")
    timezone: str = Field("UTC", description="The cron's time zone (IANA name).")
    concurrency_limit: int = Field(1, ge=1, description="Runs at once; a run due while that many run waits its turn.")


STAGES = ("ingest", "validate", "split", "drift", "train", "evaluate", "select", "refit", "publish")  # the pipeline's, in order


class NotifyConfig(Section):
    webhook: str | None = Field(None, description="POST a JSON notice here when a run fails or severe drift holds a promotion.")
    command: str | None = Field(None, description="... or run this shell command, the notice (JSON) in the environment variable RECMILL_NOTICE.")


class FlowConfig(Section):
    timeout_minutes: dict[Literal[STAGES], Annotated[float, Field(gt=0)]] = Field(  # type: ignore[valid-type]
        default_factory=lambda: {"ingest": 60, "validate": 60, "split": 60, "drift": 60, "train": 240, "evaluate": 120, "select": 60, "refit": 240, "publish": 120},
        description="Each stage's task (each model's, for train, evaluate and refit) fails after this long.",
    )
    notify: NotifyConfig = Field(default_factory=NotifyConfig)

    def timeout_seconds(self, stage: str) -> float | None:
        minutes = self.timeout_minutes.get(stage)
        return None if minutes is None else minutes * 60


class Settings(Section):
    seed: int = Field(42, description="Seed of every random choice: samples, splits, model initialisation.")
    paths: PathsConfig = Field(default_factory=PathsConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    interactions: InteractionsConfig = Field(default_factory=InteractionsConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    models: ModelsConfig = Field(default_factory=ModelsConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    gate: GateConfig = Field(default_factory=GateConfig)
    drift: DriftConfig = Field(default_factory=DriftConfig)
    duckdb: DuckDBConfig = Field(default_factory=DuckDBConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    publish: PublishConfig = Field(default_factory=PublishConfig)
    refresh: RefreshConfig = Field(default_factory=RefreshConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    flow: FlowConfig = Field(default_factory=FlowConfig)

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), sort_keys=True)


def parse_override(text: str) -> tuple[list[str], Any]:
    """'a.b=value' -> (['a', 'b'], value), the value read as YAML (so 3, true, [a, b] work)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set expects key=value, got '{text}'")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {key}: cannot read value '{raw}': {exc}") from None
    return key.strip().split("."), value


def _set_dotted(raw: dict, keys: list[str], value: Any, full: str) -> None:
    node = raw
    for i, key in enumerate(keys[:-1]):
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"--set {full}: '{'.'.join(keys[: i + 1])}' is a value, not a section")
        node = child
    node[keys[-1]] = value


def _format_errors(exc: ValidationError, origin: str) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            lines.append(f"unknown key '{loc}'")
        else:
            where = f"'{loc}'" if loc else "settings"
            lines.append(f"bad value for {where}: {err['msg']} (got {err.get('input')!r})")
    return f"{origin}: " + "; ".join(lines)


def settings_origin(path: Path | str | None, overrides: list[str] = ()) -> str:
    """Where settings came from, as error messages name it."""
    origin = str(path) if path is not None and Path(path).exists() else "defaults"
    return origin + (" with --set overrides" if overrides else "")


def read_settings(path: Path | str | None = DEFAULT_PARAMS, overrides: list[str] = ()) -> Settings:
    """Read params.yaml (missing file: all defaults) and apply dotted ``key=value`` overrides.
    The shape and values only: recmill.settings.load_settings also checks the names of
    models and metrics."""
    raw: dict = {}
    if path is not None:
        path = Path(path)
        if path.exists():
            try:
                raw = yaml.safe_load(path.read_text()) or {}
            except yaml.YAMLError as exc:
                raise ConfigError(f"{path}: not valid YAML: {exc}") from None
            if not isinstance(raw, dict):
                raise ConfigError(f"{path}: expected a mapping of sections at the top level")
        elif path != DEFAULT_PARAMS:
            raise ConfigError(f"config file not found: {path}")
    for text in overrides:
        keys, value = parse_override(text)
        _set_dotted(raw, keys, value, text)
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, settings_origin(path, overrides))) from None
