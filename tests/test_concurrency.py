"""Many users launching at once: the run limit holds, run folders never collide, an unusable runs folder is refused up
front."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from genmodels import runs
from genmodels.paths import REPO_ROOT

PYTHON = sys.executable  # captured before fake_trainer swaps sys.executable for the launched runs
LAUNCH_ARGS = dict(epochs=1, batch_size=32, lr=1e-3, seed=0, device="cpu")


@pytest.fixture
def fake_trainer(tmp_path, monkeypatch):
    """Make launch_run start a long sleep instead of `python -m train` (a live process that writes nothing)."""
    script = tmp_path / "fake-python"
    script.write_text("#!/bin/sh\nexec sleep 120\n")
    script.chmod(0o755)
    monkeypatch.setattr(runs.sys, "executable", str(script))
    return script


@pytest.fixture
def runs_root(tmp_path):
    """An empty runs folder; every process launched into it is killed afterwards."""
    root = tmp_path / "runs"
    yield root
    for status in root.glob("*/status.json"):
        pid = json.loads(status.read_text()).get("pid")
        if isinstance(pid, int) and runs.pid_alive(pid):
            os.kill(pid, signal.SIGKILL)


def launch_all_at_once(count: int, root: Path) -> tuple[list[runs.RunInfo], list[Exception]]:
    """Call launch_run from `count` threads released together; returns (launched runs, errors)."""
    barrier = threading.Barrier(count)
    launched, errors = [], []
    lock = threading.Lock()

    def worker():
        barrier.wait()
        try:
            info = runs.launch_run("vae", "mnist", root=root, **LAUNCH_ARGS)
            with lock:
                launched.append(info)
        except Exception as exc:  # collected: the assertion below says which kinds are allowed
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return launched, errors


def test_concurrent_launches_respect_the_limit(fake_trainer, runs_root, monkeypatch):
    """Eight simultaneous launches with a limit of 2: exactly 2 start, 6 get a LaunchError, no stray folders."""
    monkeypatch.setattr(runs, "max_concurrent_runs", lambda: 2)
    launched, errors = launch_all_at_once(8, runs_root)
    assert len(launched) == 2, errors
    assert len(errors) == 6 and all(isinstance(e, runs.LaunchError) and "already going" in str(e) for e in errors), (
        errors
    )
    folders = sorted(p.name for p in runs_root.iterdir() if p.is_dir())
    assert folders == sorted(info.name for info in launched)
    assert all(runs.run_info(runs_root / name).active for name in folders)


def test_a_crashed_run_frees_its_slot(fake_trainer, runs_root, monkeypatch):
    """When a running process dies, its run shows as crashed and a new launch is allowed."""
    monkeypatch.setattr(runs, "max_concurrent_runs", lambda: 1)
    first = runs.launch_run("vae", "mnist", root=runs_root, **LAUNCH_ARGS)
    with pytest.raises(runs.LaunchError):
        runs.launch_run("vae", "mnist", root=runs_root, **LAUNCH_ARGS)
    os.kill(first.status["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 30
    while runs.run_info(first.path).state != "crashed" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert runs.run_info(first.path).state == "crashed"
    second = runs.launch_run("vae", "mnist", root=runs_root, **LAUNCH_ARGS)
    assert second.path != first.path and second.active


def test_same_second_name_collisions_get_distinct_folders(fake_trainer, runs_root, monkeypatch):
    """If two launches draw the same run name, the second gets a fresh folder instead of crashing or sharing one."""
    monkeypatch.setattr(runs, "max_concurrent_runs", lambda: 10)
    names = iter(["vae-mnist-same", "vae-mnist-same", "vae-mnist-same", "vae-mnist-other"])
    monkeypatch.setattr(runs, "new_run_name", lambda kind, dataset: next(names))
    first = runs.launch_run("vae", "mnist", root=runs_root, **LAUNCH_ARGS)
    second = runs.launch_run("vae", "mnist", root=runs_root, **LAUNCH_ARGS)
    assert (first.name, second.name) == ("vae-mnist-same", "vae-mnist-other")
    assert first.status["pid"] != second.status["pid"]


LAUNCHER = """
import json, os, sys, time
from pathlib import Path
from genmodels import runs
runs.sys.executable = sys.argv[2]
runs.max_concurrent_runs = lambda: 2
go = Path(sys.argv[3])
(go.parent / f"ready-{os.getpid()}").touch()
while not go.exists():
    time.sleep(0.005)
try:
    info = runs.launch_run("vae", "mnist", root=sys.argv[1], epochs=1, batch_size=32, lr=1e-3, seed=0, device="cpu")
    print(json.dumps({"ok": info.name}))
except runs.LaunchError as exc:
    print(json.dumps({"refused": str(exc)}))
"""


def test_concurrent_launches_from_separate_processes_respect_the_limit(fake_trainer, runs_root, tmp_path):
    """Four app processes launching at the same moment (file lock across processes): 2 start, 2 are refused."""
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [PYTHON, "-c", LAUNCHER, str(runs_root), str(fake_trainer), str(go)],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("ready-*"))) < len(procs) and time.monotonic() < deadline:
        assert all(p.poll() is None for p in procs), [
            (p.returncode, p.communicate()) for p in procs if p.poll() is not None
        ]
        time.sleep(0.05)
    go.touch()  # every launcher is at the start line: release them together
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    started = [r["ok"] for r in results if "ok" in r]
    refused = [r["refused"] for r in results if "refused" in r]
    assert len(started) == 2 and len(set(started)) == 2
    assert len(refused) == 2 and all("already going" in r for r in refused)
    assert sorted(p.name for p in runs_root.iterdir() if p.is_dir()) == sorted(started)


def test_runs_folder_below_a_file_is_refused(tmp_path, fake_trainer):
    """A runs folder that cannot be created (a file is in the way, which holds even for root) gives a LaunchError."""
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    with pytest.raises(runs.LaunchError, match="not writable"):
        runs.launch_run("vae", "mnist", root=blocker / "runs", **LAUNCH_ARGS)


def test_read_only_runs_folder_is_refused(tmp_path, fake_trainer):
    """A read-only runs folder gives a LaunchError (skipped as root, who may write anywhere)."""
    if os.geteuid() == 0:
        pytest.skip("running as root: permission bits are not enforced")
    root = tmp_path / "runs"
    root.mkdir()
    root.chmod(0o500)
    try:
        with pytest.raises(runs.LaunchError, match="not writable"):
            runs.launch_run("vae", "mnist", root=root, **LAUNCH_ARGS)
    finally:
        root.chmod(0o700)


def test_full_disk_is_refused_before_launch(fake_trainer, runs_root, monkeypatch):
    """With (simulated) 5 MB free, the launch is refused with the space it needs, and no run folder is made."""
    import shutil

    real = shutil.disk_usage
    monkeypatch.setattr(runs.shutil, "disk_usage", lambda p: real(p)._replace(free=5_000_000))
    with pytest.raises(runs.LaunchError, match="MB free"):
        runs.launch_run("vae", "mnist", root=runs_root, **LAUNCH_ARGS)
    assert [p for p in runs_root.iterdir() if p.is_dir()] == []


def test_unstartable_trainer_is_a_launch_error(tmp_path, runs_root, monkeypatch):
    """If the training process cannot be started at all, the caller gets a LaunchError and the run is marked failed."""
    monkeypatch.setattr(runs.sys, "executable", str(tmp_path / "no-such-python"))
    with pytest.raises(runs.LaunchError, match="could not start"):
        runs.launch_run("vae", "mnist", root=runs_root, **LAUNCH_ARGS)
    (folder,) = [p for p in runs_root.iterdir() if p.is_dir()]
    info = runs.run_info(folder)
    assert info.state == "failed" and not info.active


def test_metrics_reader_skips_a_torn_line_while_a_writer_appends(tmp_path):
    """read_metrics while another thread appends gives only whole records, in order."""
    path = tmp_path / "metrics.jsonl"
    log = runs.MetricsLog(path)
    stop = threading.Event()

    def writer():
        step = 0
        while not stop.is_set() and step < 3_000:
            step += 1
            log.write({"type": "step", "step": step, "loss": 1.0 / step, "pad": "x" * (step % 97)})

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for _ in range(40):
            records = runs.read_metrics(path)
            steps = [r["step"] for r in records]
            assert steps == list(range(1, len(steps) + 1))
    finally:
        stop.set()
        thread.join()
        log.close()
    with open(path, "a") as f:
        f.write('{"type": "step", "step": 99999, "lo')  # a writer killed mid-line
    assert runs.read_metrics(path)[-1]["step"] != 99999


def test_app_launched_runs_yield_the_cpu(tmp_path, runs_root, monkeypatch):
    """The launcher asks the training process for a lower CPU priority, and the CLI applies it before training."""
    args_file = tmp_path / "argv.txt"
    script = tmp_path / "fake-python"
    script.write_text(f'#!/bin/sh\necho "$@" > {args_file}\nexec sleep 120\n')
    script.chmod(0o755)
    monkeypatch.setattr(runs.sys, "executable", str(script))
    runs.launch_run("vae", "mnist", root=runs_root, **LAUNCH_ARGS)
    deadline = time.monotonic() + 10
    # the shell creates the file before echo fills it: wait for its whole line
    while not (args_file.exists() and args_file.read_text().endswith("\n")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert f"--nice {runs.RUN_NICENESS}" in args_file.read_text()

    from train import cli

    applied = []
    monkeypatch.setattr(cli.os, "nice", applied.append)
    monkeypatch.setattr(cli, "train_one", lambda *a, **k: 0)
    assert cli.main(["vae", "--dataset", "mnist", "--nice", "7", "--run-dir", str(tmp_path / "run")]) == 0
    assert applied == [7]


def test_a_log_torn_by_a_crash_gets_its_next_record_on_a_line_of_its_own(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"type": "step", "step": 1}\n{"type": "step", "st')  # the writer was killed mid-line
    log = runs.MetricsLog(path)
    log.write({"type": "step", "step": 2})
    log.close()
    assert [r["step"] for r in runs.read_metrics(path)] == [1, 2]


def test_atomic_writes_are_readable_by_others_as_the_umask_allows(tmp_path):
    from genmodels.paths import atomic_write_bytes

    previous = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "model.json", b"{}")
    finally:
        os.umask(previous)
    assert (tmp_path / "model.json").stat().st_mode & 0o777 == 0o644
