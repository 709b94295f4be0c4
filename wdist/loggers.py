"""Loggers: Lightning's CSVLogger always, Lightning's WandbLogger on request (offline without a key).

W&B never blocks a run: without an API key (``WANDB_API_KEY`` or a netrc entry) it logs offline
into ``<out>/wandb`` and says so; with a key it gives the service a bounded time to answer and
falls back to offline if it does not.
"""

from __future__ import annotations

import netrc
import os
import sys
from pathlib import Path
from typing import Any, Optional

from pytorch_lightning.loggers import CSVLogger, Logger

__all__ = ["make_loggers", "wandb_api_key_present", "finish_wandb"]


def wandb_api_key_present() -> bool:
    """True when an API key is set in the environment or in ``~/.netrc`` for api.wandb.ai."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        auth = netrc.netrc().authenticators("api.wandb.ai")
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False
    return bool(auth and auth[2])


def _wandb_logger(out: Path, project: str, group: Optional[str], name: Optional[str], config: dict, offline: bool) -> Logger:
    from pytorch_lightning.loggers import WandbLogger
    import wandb

    settings = wandb.Settings(init_timeout=60, silent=True, console="off")
    logger = WandbLogger(
        project=project,
        group=group,
        name=name,
        save_dir=str(out),
        offline=offline,
        config=config,
        settings=settings,
    )
    _ = logger.experiment  # start the run now, so a failure surfaces here and not mid-training
    return logger


def make_loggers(
    out: Path,
    kind: str = "none",
    project: str = "wdist",
    group: Optional[str] = None,
    name: Optional[str] = None,
    config: Optional[dict[str, Any]] = None,
) -> list[Logger]:
    """``[CSVLogger]`` writing ``out/metrics.csv``, plus a WandbLogger when ``kind == 'wandb'``."""
    loggers: list[Logger] = [CSVLogger(save_dir=str(out), name="", version="")]
    if kind != "wandb":
        return loggers
    mode = os.environ.get("WANDB_MODE", "").lower()
    offline = mode in ("offline", "dryrun") or not wandb_api_key_present()
    if offline and mode not in ("offline", "dryrun"):
        print(
            f"W&B: no API key found (WANDB_API_KEY or ~/.netrc); logging offline to {out / 'wandb'}. "
            "Upload later with `wandb sync <run folder>`.",
            file=sys.stderr,
        )
    if offline:
        os.environ["WANDB_MODE"] = "offline"
    try:
        loggers.append(_wandb_logger(out, project, group, name, config or {}, offline))
    except Exception as err:  # network down, service refusing: keep the run going offline
        if offline:
            raise
        print(f"W&B: could not reach the service ({err}); logging offline to {out / 'wandb'}.", file=sys.stderr)
        os.environ["WANDB_MODE"] = "offline"
        loggers.append(_wandb_logger(out, project, group, name, config or {}, True))
    return loggers


def finish_wandb(loggers: list[Logger], summary: Optional[dict[str, Any]] = None, images: Optional[dict[str, Path]] = None) -> None:
    """Write the final result as the W&B run summary, attach images, and close the run."""
    for lg in loggers:
        if type(lg).__name__ != "WandbLogger":
            continue
        import wandb

        run = lg.experiment
        if summary:
            for k, v in summary.items():
                if isinstance(v, (int, float, str, bool)) or v is None:
                    run.summary[k] = v
        for key, path in (images or {}).items():
            if path and Path(path).exists():
                run.log({key: wandb.Image(str(path))})
        run.finish()
