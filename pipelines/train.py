"""Train one model twice: on train (scored on valid) and on train + valid (scored on test);
when train.refit refreshes, the second fit is the first with the valid events folded in."""

from __future__ import annotations

import logging
import shutil
import time

from recmill.config import Settings
from recmill.errors import ModelSkipped
from recmill.fits import fit_model, keep_fit_data, refreshed_fit, refreshes, shortened, tracked_params, trains_shorter
from recmill.io import Layout, run_info, write_json
from recmill.models import model_class
from recmill.tracking import Tracker

log = logging.getLogger("recmill")


def run(settings: Settings, model: str) -> dict:
    layout = Layout(settings)
    tracker = Tracker(settings.tracking)
    mlflow_run = tracker.start(model, run_info(settings)["run_id"], tracked_params(settings, model), {"model": model})
    tracker.client.log_text(mlflow_run, settings.to_json(), "settings.json")  # what a later refit of this version needs
    shutil.rmtree(layout.models / model, ignore_errors=True)
    info = {"model": model, "mlflow_run_id": mlflow_run}
    try:
        seconds = {}
        for fit in ("valid", "test"):
            if model_class(model).heavy:  # the largest fits hold no other fit's data: at scale it costs GBs, a rebuild seconds
                keep_fit_data(fit)
            if fit == "test" and refreshes(settings, model):  # at scale: trained once, then refreshed (train.refit)
                started = time.perf_counter()
                fitted = refreshed_fit(settings, model, layout.model_dir(model, "valid"), "test")
                seconds[fit] = time.perf_counter() - started
                tracker.client.set_tag(mlflow_run, "test_fit", "refresh")
            elif fit == "test" and trains_shorter(settings, model):  # at scale: as long as the valid fit found enough
                earlier = layout.model_dir(model, "valid")
                fitted, seconds[fit] = fit_model(shortened(settings, model, earlier), model, fit)
                tracker.client.set_tag(mlflow_run, "test_fit", "shortened")
            else:
                fitted, seconds[fit] = fit_model(settings, model, fit)
            fitted.save(layout.model_dir(model, fit))
            del fitted  # the next fit should not hold this one in memory too
        tracker.log_metrics(mlflow_run, {f"fit_seconds_{fit}": s for fit, s in seconds.items()})
        tracker.log_artifacts(mlflow_run, layout.models / model, "model")
        info["fit_seconds"] = seconds
    except ModelSkipped as exc:
        log.warning("%s", exc)
        tracker.client.set_tag(mlflow_run, "skipped", str(exc))
        info["skipped"] = str(exc)
    except Exception as exc:  # the model's own failure: the other models go on, and the gate keeps the champion
        log.exception("%s failed to train", model)
        info["failed"] = f"{type(exc).__name__}: {exc}"
        tracker.client.set_tag(mlflow_run, "failed", info["failed"])
        tracker.finish(mlflow_run, failed=True)
        write_json(layout.tracking_file(model), info)
        return info
    except BaseException:
        tracker.finish(mlflow_run, failed=True)
        raise
    tracker.finish(mlflow_run)
    write_json(layout.tracking_file(model), info)
    return info
