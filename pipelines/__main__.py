"""`python -m pipelines STAGE [--model M] [--config params.yaml] [--set key=value ...]`: one
stage, as dvc.yaml calls it (or `refresh`, which runs between retrains, outside the DAG)."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from pipelines import PER_MODEL_STAGES, STAGES
from recmill.errors import RecmillError
from recmill.runtime import offline_defaults
from recmill.settings import load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines", description=__doc__)
    parser.add_argument("stage", choices=(*STAGES, "refresh"))
    parser.add_argument("--model", help="the model, for the per-model stages: " + ", ".join(PER_MODEL_STAGES))
    parser.add_argument("--config", default="params.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    offline_defaults()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings(args.config, args.overrides)
        stage = importlib.import_module(f"pipelines.{args.stage}")
        if args.stage in PER_MODEL_STAGES:
            if not args.model:
                parser.error(f"stage {args.stage} needs --model")
            stage.run(settings, args.model)
        else:
            stage.run(settings)
    except RecmillError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
