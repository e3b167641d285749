"""`python -m train ... --nproc N`: the same command as N ranks on this machine, started by torchrun's launcher.

The launcher runs torch.distributed.run in this process: its agent starts the ranks, forwards SIGTERM / Ctrl-C to
them (they stop after the same step and rank 0 saves) and reports a rank that dies, which becomes the run's reason.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import time
from pathlib import Path

from genmodels.runs import read_json, write_json

SHUTDOWN_TIMEOUT_S = 120  # a stopped run's ranks finish their step and rank 0 saves, before the agent kills them


def worker_argv(argv: list[str], run_dir: Path) -> list[str]:
    """The ranks' command line: the launcher's without --nproc, --force-nproc and --nice, naming its run folder."""
    # --nice is dropped because the ranks inherit the launcher's lowered priority: again, it would add up
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ("--nproc", "--nice"):
            skip = True
        elif not (arg.startswith(("--nproc=", "--nice=")) or arg == "--force-nproc"):
            out.append(arg)
    if not any(arg == "--run-dir" or arg.startswith("--run-dir=") for arg in out):
        out += ["--run-dir", str(run_dir)]  # every rank must name the same folder, and rank 0 must use this one
    return out


def launch(nproc: int, argv: list[str], run_dir: Path) -> int:
    """Train with `nproc` ranks through torch.distributed.run; the whole run's exit code (0: finished or stopped)."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    args = get_args_parser().parse_args(
        [
            "--standalone",
            "--nproc-per-node",
            str(nproc),
            "--max-restarts",
            "0",
            "--module",
            "train",
            *worker_argv(argv, run_dir),
        ]
    )
    args.shutdown_timeout = SHUTDOWN_TIMEOUT_S
    # the ranks share the cores (torchrun would give each a single thread, with a warning)
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    print(f"training on {nproc} processes (torch.distributed.run) into {run_dir}", flush=True)
    try:
        run(args)
    except ChildFailedError as exc:
        status = read_json(run_dir / "status.json") or {}
        if status.get("state") in ("finished", "cancelled"):
            # rank 0 had saved and recorded the end: a rank that died on its way out (gloo's shutdown can abort)
            # changes nothing the run wrote
            print(f"note: the run {status['state']}, then {failure_reason(exc, None)} on exit", file=sys.stderr)
            return 0
        reason = failure_reason(exc, status)
        _mark_failed(run_dir, reason)
        print(f"error: {reason}", file=sys.stderr)
        return 1
    except SignalException as exc:  # the agent has already passed the signal on and waited for the ranks
        state = (read_json(run_dir / "status.json") or {}).get("state")
        if state == "cancelled":
            return 0
        reason = f"stopped by {exc.sigval.name} before rank 0 could save"
        _mark_failed(run_dir, reason)
        print(f"error: {reason}", file=sys.stderr)
        return 1
    return 0


def failure_reason(exc, status: dict | None) -> str:
    """One line for a failed run: the ranks that died and how (the launcher's report), then rank 0's own reason."""
    failures = sorted(exc.failures.items())
    killed = [(rank, f) for rank, f in failures if f.exitcode < 0]
    # the agent stops the survivors of a death with SIGTERM: a rank killed by anything else is the cause
    killed = [(rank, f) for rank, f in killed if f.exitcode != -signal.SIGTERM] or killed
    died = [f"rank {rank} (pid {f.pid}) was killed by {f.signal_name()}" for rank, f in killed]
    own = (status or {}).get("reason") if (status or {}).get("state") == "failed" else None
    if not died and own:
        return own  # every rank ended by itself and rank 0 said why (e.g. training diverged)
    if own:  # a peer's death reaches rank 0 as a broken connection: keep gloo's sentence, not its source location
        own = re.sub(r"\[[^\]]*\.(cc|cpp):\d+\] ", "", own).split(" This is typically")[0]
    parts = died or [
        f"rank {rank} (pid {f.pid}) exited with code {f.exitcode}"
        + (f": {f.message}" if f.message and not f.message.startswith("To enable traceback") else "")
        for rank, f in failures
    ]
    return "; ".join(parts) + (f" (rank 0: {own})" if own else "")


def _mark_failed(run_dir: Path, reason: str) -> None:
    status = read_json(run_dir / "status.json")
    if status is None:
        return  # no rank got as far as the run folder: nothing to mark
    status.update(state="failed", reason=reason, updated=time.time())
    write_json(run_dir / "status.json", status)
