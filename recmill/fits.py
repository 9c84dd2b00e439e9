"""A run's fits: which split slices each trains on, their training data (built once per
process), and a model fitted, shared, refitted on all the data or loaded back."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

from recmill.config import Settings
from recmill.data.interactions import InteractionData
from recmill.io import Layout, read_frame, read_json, run_info
from recmill.models import build_model
from recmill.models.base import FORMAT_VERSION, Recommender, saved_format

log = logging.getLogger("recmill")

# which split events each fit trains on
FIT_SPLITS = {"valid": ("train",), "test": ("train", "valid"), "full": ("train", "valid", "test")}


def fit_events(settings: Settings, fit: str, read=read_frame) -> pd.DataFrame:
    """A fit's training events: its split slices, each read with ``read``, one after the other."""
    slices = [read(Layout(settings).splits / f"{s}.parquet") for s in FIT_SPLITS[fit]]
    return slices[0] if len(slices) == 1 else pd.concat(slices, ignore_index=True)


# the training data of the last fits built in this process, by what it was built from:
# a process that trains several models (the flow's, a pool worker) builds each fit's once
_BUILT: dict[tuple, InteractionData] = {}
KEEP_BUILT = 2  # valid and test: a model trains both before the next model starts


def files_key(files) -> tuple:
    """What identifies these files' contents for a per-process cache: path, mtime and size."""
    return tuple((str(f.resolve()), f.stat().st_mtime_ns, f.stat().st_size) for f in files)


def keep_fit_data(*fits: str) -> None:
    """Drop the built training data of every fit but these: a stage that needs no more of
    it (evaluation, publishing) should not carry GBs of it at Instacart size."""
    for key in [key for key in _BUILT if key[0] not in fits]:
        del _BUILT[key]
    _forget_unused_slices()


# each split slice's frame, read once for every built fit that has it: the fits' frames share
# its Arrow string buffers (a concat of Arrow columns copies none), instead of each holding
# a copy of the train slice: GBs at Instacart size
_SLICES: dict[tuple, pd.DataFrame] = {}


def _slice_frame(path: Path) -> pd.DataFrame:
    key = files_key([path])[0]
    if key not in _SLICES:
        _SLICES[key] = read_frame(path)
    return _SLICES[key]


def _forget_unused_slices() -> None:
    used = {file for key in _BUILT for file in key[2:]}
    for key in [key for key in _SLICES if key not in used]:
        del _SLICES[key]


def fit_files(settings: Settings, fit: str) -> list[Path]:
    """The files a fit's training data is built from: its split slices, then items and users."""
    layout = Layout(settings)
    return [layout.splits / f"{s}.parquet" for s in FIT_SPLITS[fit]] + [layout.canonical / f"{t}.parquet" for t in ("items", "users")]


def fit_data(settings: Settings, fit: str) -> InteractionData:
    """The InteractionData of a fit's events, reused while its files and settings are the same
    (models copy what they change, never the data itself)."""
    files = fit_files(settings, fit)
    key = (fit, settings.interactions.model_dump_json(), *files_key(files))
    if key not in _BUILT:
        while len(_BUILT) >= KEEP_BUILT:
            _BUILT.pop(next(iter(_BUILT)))
        _forget_unused_slices()
        events = fit_events(settings, fit, read=_slice_frame)
        _BUILT[key] = InteractionData.build(events, read_frame(files[-2]), read_frame(files[-1]), settings.interactions)
    return _BUILT[key]


def shares_fits(settings: Settings, model: str) -> bool:
    """Whether two_stage fits this model too, as a serving generator on the same data."""
    return "two_stage" in settings.train.models and model in settings.models.two_stage.generators


def shared_fit(settings: Settings, model: str, fit: str) -> Recommender:
    """A model fitted once on a fit's data for both its users, the model itself and
    two_stage's serving generators: the first fits it and leaves it in
    <data>/shared_fits/<model>-<fit>, the other loads it while the files and settings it
    came from are the same."""
    from recmill.models import model_class

    key = digest([FORMAT_VERSION, tracked_params(settings, model), files_key(fit_files(settings, fit))])
    path = Layout(settings).shared_fits / f"{model}-{fit}"
    if (path / "key").is_file() and (path / "key").read_text() == key:
        return model_class(model).load(path)
    fitted = build_model(model, settings).fit(fit_data(settings, fit))
    shutil.rmtree(path, ignore_errors=True)
    unfinished = path.with_name(f"{path.name}.{os.getpid()}")  # whole or absent: a reader never sees half of it
    fitted.save(unfinished)
    (unfinished / "key").write_text(key)
    try:
        unfinished.rename(path)
    except OSError:  # another process shared it first
        shutil.rmtree(unfinished, ignore_errors=True)
    return fitted


def fit_model(settings: Settings, model: str, fit: str) -> tuple[Recommender, float]:
    """Train one model on the events of one fit; returns it and the seconds it took."""
    data = fit_data(settings, fit)
    started = time.perf_counter()
    if shares_fits(settings, model):
        fitted = shared_fit(settings, model, fit)
    else:
        fitted = build_model(model, settings)
        if model == "two_stage":
            fitted.serving_fits = lambda name: shared_fit(settings, name, fit)
        fitted = fitted.fit(data)
    return fitted, time.perf_counter() - started


def tracked_params(settings: Settings, model: str) -> dict:
    """Every setting that shapes this model's fits: its own section, the sections of the
    models it trains inside (two_stage's generators), and the shared input settings."""
    config = getattr(settings.models, model)
    params = {
        "model": model,
        "config": config.model_dump(mode="json"),
        "seed": settings.seed,
        "interactions": settings.interactions.model_dump(mode="json"),
        "split": settings.split.model_dump(mode="json"),
        "data": settings.data.model_dump(mode="json"),
    }
    for inner in getattr(config, "generators", []):
        params[f"generator.{inner}"] = getattr(settings.models, inner).model_dump(mode="json")
    return params


def digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def settings_hash(settings: Settings, model: str) -> str:
    """Changes when any setting of tracked_params does: a new minor version."""
    return digest(tracked_params(settings, model))


def architecture(settings: Settings, model: str) -> str:
    """Changes with the model's storage format or the set of its settings: a new major version."""
    def keys(obj, prefix=""):
        return sorted(
            k for name, value in obj.items() for k in ([f"{prefix}{name}"] + (keys(value, f"{prefix}{name}.") if isinstance(value, dict) else []))
        )

    return digest([model, FORMAT_VERSION, keys(getattr(settings.models, model).model_dump(mode="json"))])


def split_events(settings: Settings) -> int:
    """Events in the split slices, from their files' metadata."""
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(Layout(settings).splits / f"{s}.parquet").metadata.num_rows for s in FIT_SPLITS["full"])


def refreshes(settings: Settings, model: str) -> bool:
    """Whether this model's test fit and fit on all the data are refreshes of the fit before
    them (train.refit) rather than trainings of their own."""
    from recmill.models import model_class

    return model_class(model).folds_in and settings.train.refreshes(split_events(settings))


def trains_shorter(settings: Settings, model: str) -> bool:
    """Whether this model's later fits train with what its fit before found enough (its
    later_fit_config): where train.refit refreshes the others and it cannot fold in."""
    from recmill.models import model_class

    return not model_class(model).folds_in and settings.train.refreshes(split_events(settings))


def shortened(settings: Settings, model: str, earlier: Path) -> Settings:
    """The settings with the model's section the later_fit_config of its fit saved at ``earlier``."""
    from recmill.models import load_saved

    config = load_saved(earlier).later_fit_config()
    return settings.model_copy(update={"models": settings.models.model_copy(update={model: config})})


def refreshed_fit(settings: Settings, model: str, saved: Path, fit: str = "full") -> Recommender:
    """A saved fit (the valid or test fit) with every user's whole history in ``fit``'s data
    folded in, its item side frozen: a fit for the cost of a user step (train.refit's refresh)."""
    from recmill.models import model_class

    fitted = model_class(model).load(saved)
    data = fit_data(settings, fit)
    if not np.array_equal(data.item_ids, fitted.item_ids_):
        data = data.over_items(fitted.item_ids_)
    return fitted.refresh_users(data)


def fit_full(settings: Settings, model: str, pipeline_run: str, out_dir: Path, refresh: Path | None = None) -> tuple[Recommender, str]:
    """Train on all the data (or refresh the test fit saved at ``refresh``), save to out_dir
    and log it as the MLflow run '<model>-full'; returns the model and the run. A skipped
    model is tagged on its run and re-raised."""
    from recmill.errors import ModelSkipped
    from recmill.tracking import Tracker

    tracker = Tracker(settings.tracking)
    tags = {"model": model, "fit": "full", "method": "refresh" if refresh else "fit"}
    run = tracker.start(f"{model}-full", pipeline_run, tracked_params(settings, model), tags)
    try:
        if refresh:
            started = time.perf_counter()
            fitted = refreshed_fit(settings, model, refresh)
            seconds = time.perf_counter() - started
        else:
            fitted, seconds = fit_model(settings, model, "full")
    except ModelSkipped as exc:
        tracker.client.set_tag(run, "skipped", str(exc))
        tracker.finish(run)
        raise
    except BaseException:
        tracker.finish(run, failed=True)
        raise
    fitted.save(out_dir)
    tracker.log_metrics(run, {"fit_seconds_full": seconds})
    tracker.log_artifacts(run, out_dir, "model")
    tracker.finish(run)
    return fitted, run


def saved_fit(settings: Settings, registry, version, into: Path) -> Path:
    """The folder of a registered version's fit on all the data: its full-data run's, when it
    has one saved in this recmill's format, otherwise one trained now (into/fitted) on this
    run's data with the settings it was registered with."""
    if version.full_run:
        saved = registry.download(version.full_run, "model", into)
        if saved_format(saved) == FORMAT_VERSION:
            return saved
        log.info("%s's fit was saved in model format %s, not %s: trained again", version.label, saved_format(saved), FORMAT_VERSION)
    own = Settings.model_validate(registry.settings_of(version, into))
    own = own.model_copy(update={"paths": settings.paths, "tracking": settings.tracking})  # this run's data and store
    _, run = fit_full(own, version.model, run_info(settings)["run_id"], into / "fitted")
    registry.set_full_run(version.version, run)
    return into / "fitted"


def load_fit(settings: Settings, registry, version, into: Path) -> Recommender:
    """saved_fit, loaded."""
    from recmill.models import load_saved

    return load_saved(saved_fit(settings, registry, version, into))


def refitted(settings: Settings) -> dict[str, str]:
    """model -> MLflow run of its refit, for the models this pipeline run refitted."""
    layout = Layout(settings)
    this_run = run_info(settings)["run_id"]
    records = [read_json(path) for path in sorted(layout.refit.glob("*.json"))] if layout.refit.exists() else []
    return {r["model"]: r["mlflow_run_id"] for r in records if r.get("run_id") == this_run and "mlflow_run_id" in r}
