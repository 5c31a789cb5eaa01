"""The queue of runs for training workers (``python -m cifarmix worker``): claiming the next one, the heartbeat of
the worker that holds it, the kill request it carries out, the bookkeeping when it ends or its worker is lost.

A run is queued for workers with ``placement = 'worker'`` and status ``queued`` (``Runs.create_run``, or
``queue_again`` for a run that ended). A worker claims it in one transaction (:meth:`WorkQueue.claim_next`): on
SQLite a ``BEGIN IMMEDIATE`` one, which no other writer can interleave; on PostgreSQL the row is picked with
``FOR UPDATE SKIP LOCKED``, so two workers claiming at once take two different runs. Either way each run goes to
one worker. A claimed run is ``running`` with its worker's id, host and heartbeat; the worker then starts the
training process, which claims the run for itself (``Runs.claim`` with the worker's id) and records its pid there.

Stop and Kill travel through the store: the training process polls ``stop_requested`` (as every training does), the
worker polls ``kill_requested`` with each heartbeat (:meth:`WorkQueue.beat`) and ends its own training process.
A worker that stops beating is found by ``cifarmix.heartbeats``; :meth:`WorkQueue.mark_lost` marks its run
``killed`` with ``worker_lost`` set, which makes it claimable again: the next worker resumes it from its last
checkpoint.

The claim's row lock depends on the database (``Database.dialect``).
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection

from cifarmix.store.db import Database, utc_now
from cifarmix.store.runs import WORKER, _run_from_row, _status_assignments, end_run, require_run
from cifarmix.store.values import ACTIVE_STATUSES, TERMINAL_STATUSES, validate_status

_ACTIVE = ", ".join(repr(status) for status in ACTIVE_STATUSES)
# Runs a worker may take: queued for workers, or killed because their worker was lost (resumed where they were).
CLAIMABLE = (f"placement = '{WORKER}' AND (status = 'queued' OR (status = 'killed' AND worker_lost = 1))")
_HOLDS = f"id = :id AND worker = :worker AND status IN ({_ACTIVE})"  # the run is active and this worker's


class WorkQueue(Database):
    """Runs queued for training workers: claim, heartbeat, kill request, the end of a worker's run."""

    def claim_next(self, worker: str, host: str, heartbeat_seconds: float, message: str = "claimed",
                   skip_archs: tuple[str, ...] = ()) -> dict | None:
        """Take the oldest claimable run for ``worker`` (on ``host``, beating every ``heartbeat_seconds``) in one
        transaction: it becomes ``running`` with ``message``, this worker, a first heartbeat, no process yet and no
        kill request. Runs of the architectures in ``skip_archs`` are left for other workers (a CPU worker leaves
        the networks meant for a GPU). Returns the run (as ``get_run`` does), or None when there is nothing to claim.
        """
        skipped = {f"skip{index}": arch for index, arch in enumerate(skip_archs)}
        unless = f" AND arch NOT IN ({', '.join(f':{key}' for key in skipped)})" if skipped else ""
        pick = f"SELECT id FROM runs WHERE {CLAIMABLE}{unless} ORDER BY id LIMIT 1"
        if self.dialect == "postgresql":
            pick += " FOR UPDATE SKIP LOCKED"  # a row another worker is claiming is passed over, not waited for
        sql = (f"UPDATE runs SET worker = :worker, worker_host = :host, heartbeat_at = :now,"
               f" heartbeat_seconds = :heartbeat, worker_lost = 0, kill_requested = 0, pid = NULL,"
               f" process_started = NULL, {_status_assignments('running')} WHERE id = ({pick}) RETURNING *")

        def take(conn: Connection) -> dict | None:
            row = conn.execute(text(sql), {"worker": worker, "host": host, "now": utc_now(),
                                     "heartbeat": float(heartbeat_seconds), "status": "running",
                                     "message": message, **skipped}).mappings().first()
            return None if row is None else _run_from_row(row)

        return self._write(take)

    def worker_runs(self) -> list[dict]:
        """The active runs of the workers' queue (queued or held), newest first: what a lost worker can hold."""
        sql = f"SELECT * FROM runs WHERE placement = '{WORKER}' AND status IN ({_ACTIVE}) ORDER BY id DESC"
        rows = self._read(lambda conn: conn.execute(text(sql)).mappings().all())
        return [_run_from_row(row) for row in rows]

    def beat(self, run_id: int, worker: str) -> dict | None:
        """The worker's heartbeat for the run it holds: its time now, if the run still is active and this worker's.

        Returns:
            None when the run is gone (deleted); else ``{"ours": ..., "active": ..., "kill_requested": ...}``:
            whether this worker still holds it (not when another process has taken it over), whether it is still
            active (a training process that ended its run is about to exit), and whether a kill was asked for.
        """

        def update(conn: Connection) -> dict | None:
            conn.execute(text(f"UPDATE runs SET heartbeat_at = :now WHERE {_HOLDS}"),
                         {"now": utc_now(), "id": int(run_id), "worker": worker})
            row = conn.execute(text("SELECT status, worker, kill_requested FROM runs WHERE id = :id"),
                               {"id": int(run_id)}).mappings().first()
            if row is None:
                return None
            return {"ours": row["worker"] == worker, "active": row["status"] in ACTIVE_STATUSES,
                    "kill_requested": bool(row["kill_requested"])}

        return self._write(update)

    def request_kill(self, run_id: int) -> str:
        """Ask the worker of a worker's run to end its training process at once (it polls ``kill_requested``).

        A run still waiting in the queue has no process: it is ended here, ``killed`` (resumable).

        Returns:
            ``"requested"`` (a worker holds the run and will kill it), ``"ended"`` (it was waiting: now killed) or
            ``"not active"`` (nothing to kill).

        Raises:
            UnknownRunError: for an unknown run.
        """
        waiting = (f"UPDATE runs SET kill_requested = 1, worker_lost = 0, {_status_assignments('killed')}"
                   f" WHERE id = :id AND {CLAIMABLE}")

        def request(conn: Connection) -> str:
            require_run(conn, run_id)
            params = {"id": int(run_id), "status": "killed", "now": utc_now(),
                      "message": "killed before a worker took it; Resume queues it again"}
            if conn.execute(text(waiting), params).rowcount:
                return "ended"
            held = conn.execute(text(f"UPDATE runs SET kill_requested = 1 WHERE id = :id AND worker IS NOT NULL"
                                     f" AND status IN ({_ACTIVE})"), {"id": int(run_id)}).rowcount
            return "requested" if held else "not active"

        return self._write(request)

    def stop_waiting(self, run_id: int) -> bool:
        """End a run waiting in the queue (no worker holds it yet) as ``stopped``; whether it was one."""
        sql = (f"UPDATE runs SET stop_requested = 1, {_status_assignments('stopped')}"
               f" WHERE id = :id AND placement = '{WORKER}' AND status = 'queued'")
        return self._write(lambda conn: conn.execute(text(sql), {
            "id": int(run_id), "status": "stopped", "now": utc_now(),
            "message": "stopped before a worker took it"}).rowcount == 1)

    def end_worker_run(self, run_id: int, worker: str, status: str, message: str, lost: bool = False) -> bool:
        """Move a run ``worker`` still holds (active) to the terminal ``status`` with ``message`` (``{epochs_done}``
        is replaced by its completed epochs), when its training process has ended without ending the run.
        ``lost``: the worker gave it up (shutting down, or cut off from the store), so another worker resumes it.

        Returns:
            Whether the run was moved (False: it had ended on its own, or is no longer this worker's).
        """
        validate_status(status)
        if status not in TERMINAL_STATUSES:
            raise ValueError(f"Expected a terminal status among {', '.join(TERMINAL_STATUSES)}; found {status!r}.")
        sql = f"UPDATE runs SET worker_lost = :lost, {_status_assignments(status)} WHERE {_HOLDS}"
        return self._write(lambda conn: end_run(conn, run_id, sql, message, status=status, lost=int(lost),
                                                worker=worker))

    def mark_lost(self, run_id: int, worker: str, heartbeat_at: str, message: str) -> bool:
        """Mark a run ``killed`` whose worker was found silent since ``heartbeat_at``, in one transaction that
        checks the worker still holds it and has not beaten since (a heartbeat that arrived meanwhile keeps it).
        ``worker_lost`` is set: any worker may claim it and resume it from its last checkpoint.

        Returns:
            Whether the run was marked.
        """
        sql = (f"UPDATE runs SET worker_lost = 1, {_status_assignments('killed')}"
               f" WHERE {_HOLDS} AND heartbeat_at = :seen")

        return self._write(lambda conn: end_run(conn, run_id, sql, message, status="killed", worker=worker,
                                                seen=heartbeat_at))

    def queue_again(self, run_id: int, message: str = "queued to resume: waiting for a worker") -> bool:
        """Hand a run that ended (stopped, killed, failed) to the workers: queued, held by none; a worker resumes it
        from its last checkpoint. Returns whether it was queued (False: it is active or finished)."""
        sql = (f"UPDATE runs SET placement = '{WORKER}', worker = NULL, worker_host = NULL, heartbeat_at = NULL,"
               f" worker_lost = 0, kill_requested = 0, pid = NULL, process_started = NULL,"
               f" {_status_assignments('queued')} WHERE id = :id AND status IN ('stopped', 'killed', 'failed')")

        def update(conn: Connection) -> bool:
            require_run(conn, run_id)
            return conn.execute(text(sql), {"id": int(run_id), "status": "queued", "message": message,
                                      "now": utc_now()}).rowcount == 1

        return self._write(update)
