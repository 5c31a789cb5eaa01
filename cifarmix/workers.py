"""Training workers: ``python -m cifarmix worker`` claims queued runs from the run store and trains them, one at a
time, each in its own ``python -m cifarmix train`` process, as the app starts its trainings.

The loop (:meth:`Worker.serve`): mark the runs of lost workers killed (``heartbeats.reap_lost``), claim the next run
(``RunStore.claim_next``: atomic, so each run goes to one worker), start its training process, and while it runs
write a heartbeat every ``interval`` seconds (``RunStore.beat``), which also reads the run's kill request. Then:

- a Stop is the training process's own business: it polls ``stop_requested`` and ends the run ``stopped``;
- a Kill requested through the store (``jobs.kill``) makes the worker end its own training process (SIGTERM to its
  process group, SIGKILL if it lingers) and mark the run ``killed``: no other machine ever signals a process here;
- a run another process took over (its worker was taken for lost) or deleted: the worker ends its process;
- the store unreachable for longer than a lost worker's silence: the worker ends its process (the other workers
  take the run for lost and resume it, so two processes never train one run for long);
- a training process that exits without ending its run (a crash): the run is marked ``failed`` with the exit code;
- SIGTERM or Ctrl-C to the worker: it ends its training process, hands the run back (``killed``, resumable by any
  worker) and exits.

On Linux the training process is also killed when its worker dies (``PR_SET_PDEATHSIG``): a worker killed with
SIGKILL leaves no orphan training behind for the run the next worker resumes.

A run resumed from a lost worker continues from its last checkpoint in the run-files root (``CIFARMIX_RUNS``): a
folder every worker and the app server mount at the same path.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone

from cifarmix import architectures, devices, heartbeats, jobs, processes, runinfo, slots
from cifarmix.store import RunStore

DEVICES = ("auto", "cpu", "gpu")
END_GRACE_S = 10.0  # after SIGTERM, how long a training process may take to exit before SIGKILL
FINISHING_GRACE_S = 60.0  # how long a training process that has ended its run may take to exit
_PR_SET_PDEATHSIG = 1


UNREACHABLE = "unreachable"  # what :meth:`Worker.claim` returns while the store cannot be reached


class Shutdown(Exception):
    """The worker was asked to exit (SIGTERM)."""


def worker_id() -> str:
    """This worker's id: ``host:pid:random`` (unique among live workers, and across restarts)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(2)}"


def device_environment(device: str) -> dict:
    """The variables a worker's training processes get for ``device``: ``cpu`` hides the GPUs from TensorFlow,
    ``gpu`` requires one (``nvidia-smi`` must list it), ``auto`` trains on what TensorFlow finds.

    Raises:
        ValueError: an unknown device, or ``gpu`` on a machine without an NVIDIA GPU.
    """
    if device not in DEVICES:
        raise ValueError(f"Expected a worker device among {', '.join(DEVICES)}; found {device!r}.")
    if device == "cpu":
        return {"CUDA_VISIBLE_DEVICES": "-1"}
    if device == "gpu" and not devices.nvidia_smi_gpus():
        raise ValueError("--device gpu: this machine shows no NVIDIA GPU (nvidia-smi lists none, or is not "
                         "installed). Install the driver and requirements-gpu.txt, or use --device cpu or auto.")
    return {}


def left_to_gpu_workers(device: str) -> tuple[str, ...]:
    """The architectures meant for a GPU (``needs_gpu``), which a worker without one leaves to the others: all of
    them with ``--device cpu``, or with ``auto`` on a machine where ``nvidia-smi`` lists no GPU; else none."""
    if device == "gpu" or (device == "auto" and devices.nvidia_smi_gpus()):
        return ()
    return tuple(name for name in architectures.names() if architectures.get(name).needs_gpu)


def _die_with_parent():
    """A ``preexec_fn`` that has the kernel SIGKILL the training process when its worker dies (Linux), or None."""
    if not sys.platform.startswith("linux"):
        return None
    prctl, parent = ctypes.CDLL(None, use_errno=True).prctl, os.getpid()

    def arrange() -> None:  # in the child, between fork and exec
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the worker died before the request was in place
            os._exit(1)

    return arrange


def end_process(process: subprocess.Popen) -> int:
    """SIGTERM to the process group ``process`` leads, SIGKILL after ``END_GRACE_S``; its exit code."""
    processes.terminate(process.pid)
    try:
        return process.wait(timeout=END_GRACE_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        return process.wait()


class Worker:
    """A training worker over one run store.

    Args:
        store: the run store (every worker and the app server use the same one).
        device: ``auto``, ``cpu`` or ``gpu`` (see :func:`device_environment`).
        heartbeat: seconds between heartbeats, and between looks at the queue while idle (default
            ``heartbeats.interval()``).
        max_runs: exit after this many runs (None: never).
        exit_when_idle: exit when there is nothing to claim.
        data_source: CIFAR-10 for the training processes (None: ``CIFARMIX_DATA`` / Keras download).
        say: where the worker's log lines go (default: stdout).

    Raises:
        ValueError: a bad device (or no GPU for ``gpu``), heartbeat or ``max_runs`` (at least 1).
    """

    def __init__(self, store: RunStore, device: str = "auto", heartbeat: float | None = None,
                 max_runs: int | None = None, exit_when_idle: bool = False, data_source: str | None = None,
                 say=None):
        if max_runs is not None and max_runs < 1:
            raise ValueError(f"Expected --max-runs to be at least 1; found {max_runs} (leave it out to never stop).")
        self.heartbeat = heartbeats.interval() if heartbeat is None else float(heartbeat)
        if not 0 < self.heartbeat < float("inf"):
            raise ValueError(f"Expected a heartbeat of a positive number of seconds; found {heartbeat!r}.")
        self.environment = device_environment(device)
        self.store, self.device, self.max_runs, self.exit_when_idle = store, device, max_runs, exit_when_idle
        self.data_source = data_source
        self.id, self.host = worker_id(), socket.gethostname()
        self.environment[slots.WORKER_ENV] = self.id
        self.skip_archs = left_to_gpu_workers(device)
        self.lost_after = heartbeats.lost_after_beats() * self.heartbeat
        self._say = say or (lambda line: print(line, flush=True))

    def say(self, text: str) -> None:
        self._say(f"{datetime.now(timezone.utc):%H:%M:%S} worker {self.id}: {text}")

    # -------------------------------------------------------------------------------------------- the loop

    def serve(self) -> int:
        """Claim and train runs until ``max_runs`` are done, the queue is empty (with ``exit_when_idle``), or the
        worker is told to exit (SIGTERM, Ctrl-C). Returns the number of runs it trained."""
        trained = 0
        previous = signal.signal(signal.SIGTERM, self._shutdown)
        self.say(f"on {self.host}, device {self.device}, heartbeat every {self.heartbeat:g} s, {self.store!r}"
                 + (f"; leaves {', '.join(self.skip_archs)} to GPU workers" if self.skip_archs else ""))
        try:
            while self.max_runs is None or trained < self.max_runs:
                run = self.claim()
                if run == UNREACHABLE:  # not idle: the queue could not be read; try again
                    time.sleep(self.heartbeat)
                    continue
                if run is None:
                    if self.exit_when_idle:
                        self.say("no queued run: exiting (--exit-when-idle)")
                        break
                    time.sleep(self.heartbeat)
                    continue
                self.train(run)
                trained += 1
        except (Shutdown, KeyboardInterrupt):
            self.say("asked to exit")
        finally:
            signal.signal(signal.SIGTERM, previous)
        self.say(f"trained {trained} run(s); exiting")
        return trained

    def _shutdown(self, signum, frame) -> None:
        raise Shutdown()

    def claim(self) -> dict | str | None:
        """Free the runs of lost workers, then claim the next queued run (None: none; ``UNREACHABLE``: the store
        could not be reached, said on the worker's output)."""
        try:
            for run_id in heartbeats.reap_lost(self.store):
                self.say(f"run {run_id}: its worker missed its heartbeats; marked killed, to be resumed")
            return self.store.claim_next(self.id, self.host, self.heartbeat, runinfo.STARTING, self.skip_archs)
        except Exception as error:  # the store on another machine may be away for a while: try again later
            self.say(f"cannot reach the run store ({type(error).__name__}: {error}); trying again")
            return UNREACHABLE

    # ------------------------------------------------------------------------------------------ one run

    def train(self, run: dict) -> None:
        """Train one claimed run in its own process, beating and watching for a kill, then record how it ended."""
        run_id = run["id"]
        after = run.get("epochs_done") or 0
        self.say(f"claimed run {run_id} ({run['arch']}" + (f", resuming after epoch {after})" if after else ")"))
        try:
            process = jobs.launch(run_id, ["--run-id", str(run_id)], self.data_source, self.environment,
                                  preexec_fn=_die_with_parent())
        except OSError as error:
            self._end(run_id, "failed", f"worker {self.id} could not start the training process: {error}")
            return
        try:
            code, reason = self.watch(process, run_id)
        except (Shutdown, KeyboardInterrupt):
            end_process(process)
            self._end(run_id, "killed", f"worker {self.id} shut down after {{epochs_done}} epochs; the next free "
                      "worker resumes it from its last checkpoint", lost=True)
            raise
        if reason == "kill":
            self._end(run_id, "killed", f"killed on request: worker {self.id} ended its training process after "
                      "{epochs_done} epochs; Resume continues from the last whole epoch")
        elif reason == "cut off":
            self._end(run_id, "killed", f"worker {self.id} lost the run store and ended its training process after "
                      "{epochs_done} epochs; the next free worker resumes it", lost=True)
        elif reason is None and code != 0:
            self._end(run_id, "failed", f"the training process exited with code {code} before it ended the run "
                      f"(worker {self.id}); see the last lines of its log, fix the cause, then Resume")
        final = self.store.get_run(run_id) or {}
        self.say(f"run {run_id} {final.get('status', 'deleted')}: {final.get('message') or reason or ''}")

    def watch(self, process: subprocess.Popen, run_id: int) -> tuple[int, str | None]:
        """Wait for the training process, beating every ``heartbeat`` seconds. Returns its exit code and why the
        worker ended it: ``"kill"`` (requested), ``"taken"`` (the run is no longer this worker's: taken over or
        deleted), ``"cut off"`` (no heartbeat written for a lost worker's silence), ``"hung"`` (it ended its run
        but did not exit), or None (it exited by itself)."""
        last_beat = time.monotonic()
        finished_at = None
        while True:
            with contextlib.suppress(subprocess.TimeoutExpired):  # still running after a heartbeat's wait: beat
                return process.wait(timeout=self.heartbeat), None
            try:
                seen = self.store.beat(run_id, self.id)
            except Exception as error:  # keep training through a short outage; past the threshold, give it up
                self.say(f"run {run_id}: no heartbeat written ({type(error).__name__}: {error})")
                if time.monotonic() - last_beat > self.lost_after:
                    return end_process(process), "cut off"
                continue
            last_beat = time.monotonic()
            if seen is None or not seen["ours"]:
                return end_process(process), "taken"
            if seen["kill_requested"]:
                return end_process(process), "kill"
            if not seen["active"]:  # it has written its run's end and is exiting
                finished_at = finished_at or time.monotonic()
                if time.monotonic() - finished_at > FINISHING_GRACE_S:
                    return end_process(process), "hung"

    def _end(self, run_id: int, status: str, message: str, lost: bool = False) -> None:
        try:
            self.store.end_worker_run(run_id, self.id, status, message, lost=lost)
        except Exception as error:  # unreachable: the other workers take the silent run for lost
            self.say(f"run {run_id}: could not record its end ({type(error).__name__}: {error})")
