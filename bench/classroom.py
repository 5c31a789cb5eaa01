"""A whole class at once: the server's CPU per interaction, and latency with N players playing together.

Starts a real server (``cifarmix.serving``: one Streamlit process, or several behind nginx with ``--processes``)
on a temporary ``CIFARMIX_HOME`` (the shipped models of ``artifacts/models``; CIFAR-10 from ``CIFARMIX_DATA``),
then:

1. **cost**: one session alone, interaction by interaction, reads the server's CPU (``utime + stime`` of every
   server process in ``/proc/<pid>/stat``) before and after each, and reports the CPU-seconds per interaction kind:
   Game page load, start, pick, submit, next round, finish (the last "next": the save); Mixer page load, new
   random pair, slider step.
2. **load**: for each N of ``--players``, N sessions play one 10-round game each at once, thinking 2.5-3.5 s
   (``--think``) between actions, and report p50 / p95 latency per kind, the server's CPU (in cores), the
   clients' own CPU apart, and how many games the run store saved.

The sessions are light clients (``bench/stclient.py``): Streamlit's own websocket protocol, no browser. Real
browsers cost more CPU than the server they load (issue 16: 20 Chromium sessions took most of the two cores), so
with browsers the bench would measure the browsers; the light client asks the server for exactly what a browser
asks (the page, every script run with the widget states, every image of ``/media``) for about 1% of a browser's
CPU. The clients run at a lower priority than the server (``--nice``, 10 by default; but when a training keeps the
other cores busy at nice 0, nice 10 starves the clients: then use ``--nice 0``). ``tests/test_classroom.py`` checks with one
real Chromium that a refreshed game resumes.

    CIFARMIX_DATA=../shared/data/cifar-10-python.tar.gz .venv/bin/python bench/classroom.py --players 15 30 60
    .venv/bin/python bench/classroom.py --processes 2 --players 30 60 --skip-cost

A busy machine (a training beside it) slows latency, not CPU-seconds: compare CPU per interaction across runs,
and latency only within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np

from stclient import ClientError, Session

START_LABEL = "Start a 10-round game"
TICK = os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------------------------------------- measuring


def process_cpu(pids: list[int]) -> float:
    """CPU-seconds (user + system) used so far by the processes ``pids`` (and their waited-for children)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(value) for value in fields[11:15])  # utime, stime, cutime, cstime
    return total / TICK


def server_pids(root: int) -> list[int]:
    """``root`` and every process below it (the Streamlit servers and nginx's master and workers)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def percentile(samples: list[float], q: float) -> float:
    return float(np.percentile(samples, q)) if samples else float("nan")


# ---------------------------------------------------------------------------------------------------- server


def start_server(processes: int, home: Path, log_dir: Path):
    """The server (``serving.Server``) on a free port; CIFARMIX_HOME set for its processes."""
    from cifarmix import serving

    os.environ["CIFARMIX_HOME"] = str(home)
    server = serving.Server(processes, "127.0.0.1", serving.free_port(), log_dir=log_dir)
    server.start()
    return server


def all_pids(server) -> list[int]:
    return sorted({pid for child in server.pids() for pid in server_pids(child)})


def saved_games(home: Path) -> int:
    with sqlite3.connect(home / "cifarmix.sqlite3") as db:
        return db.execute("SELECT count(*) FROM scores").fetchone()[0]


# ------------------------------------------------------------------------------------------------ the players


async def play_game(session: Session, step) -> None:
    """One 10-round game on an opened Game page; each click goes through ``await step(kind, click)``, where
    ``click`` is the awaitable click (it returns the seconds until the page was drawn)."""
    await step("start", session.click(label=START_LABEL))
    while session.has("game_submit"):
        await step("pick", session.click(f"game_pick_{random.randrange(5)}"))
        await step("pick", session.click(f"game_pick_{5 + random.randrange(5)}"))
        await step("submit", session.click("game_submit"))
        last = "See the results" in session.find("game_next").label
        await step("finish" if last else "next", session.click("game_next"))
    if not session.has("game_again"):
        raise ClientError("the game ended without its end screen: " + session.text()[-300:])


async def warm_up(backends: list[int]) -> None:
    """Each Streamlit process loads CIFAR-10 and the champion for its first game (~10 s): do it before measuring,
    straight on each process's own port."""
    for port in backends:
        session = Session(f"http://127.0.0.1:{port}", page="game")
        await session.open()
        await session.click(label=START_LABEL)
        await session.close()


async def unmeasured(kind: str, click) -> None:
    await click


async def cost(url: str, pids: list[int], games: int, mixer_steps: int) -> dict[str, list[float]]:
    """Server CPU-seconds per interaction kind, one session at a time (after one unmeasured warm-up game)."""
    spent: dict[str, list[float]] = {}

    async def measured(kind: str, action) -> None:
        before = process_cpu(pids)
        await action
        await asyncio.sleep(0.05)  # the media requests' last bytes, the run's clean-up
        spent.setdefault(kind, []).append(process_cpu(pids) - before)

    session = Session(url, page="game")
    await session.open()
    await play_game(session, unmeasured)
    await session.close()
    for _ in range(games):
        session = Session(url, page="game")
        await measured("Game: page load", session.open())
        await play_game(session, lambda kind, click: measured(f"Game: {kind}", click))
        await session.close()
    session = Session(url, page="")
    await measured("Mixer: page load", session.open())
    for number in range(mixer_steps):
        await measured("Mixer: new random pair", session.click(label="New random pair"))
        weight = round(0.3 + 0.05 * (number % 8), 2)
        await measured("Mixer: slider step", session.set_value("mixer_alpha", double_array_value=[weight]))
    await session.close()
    return spent


async def load(url: str, players: int, think: tuple[float, float]) -> dict:
    """``players`` sessions each playing a game at once: latencies per kind, failures."""
    latencies: dict[str, list[float]] = {}
    failures: list[str] = []

    async def thinking(kind: str, click) -> None:
        await asyncio.sleep(random.uniform(*think))
        latencies.setdefault(kind, []).append(await click)

    async def player(number: int) -> None:
        await asyncio.sleep(random.uniform(0, think[1]))  # a class does not press Enter at the same instant
        session = Session(url, page="game")
        try:
            latencies.setdefault("page load", []).append(await session.open())
            await play_game(session, thinking)
        except (ClientError, OSError) as error:
            failures.append(f"player {number}: {error}")
        finally:
            await session.close()

    await asyncio.gather(*(player(n) for n in range(players)))
    return {"latencies": latencies, "failures": failures}


# ------------------------------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--players", type=int, nargs="*", default=[15, 30], help="sessions at once (default 15 30)")
    parser.add_argument("--processes", type=int, default=1, help="Streamlit processes (more: behind nginx)")
    parser.add_argument("--think", type=float, nargs=2, default=(2.5, 3.5), metavar=("MIN", "MAX"),
                        help="seconds a player thinks between actions (default 2.5 3.5)")
    parser.add_argument("--cost-games", type=int, default=1, help="games measured one at a time (default 1)")
    parser.add_argument("--mixer-steps", type=int, default=8, help="Mixer clicks of each kind measured (default 8)")
    parser.add_argument("--skip-cost", action="store_true", help="only the load phase")
    parser.add_argument("--nice", type=int, default=10,
                        help="the clients' niceness above the server's (default 10). On a machine whose other "
                             "cores are busy at nice 0 (a training), 10 starves the clients and their latencies "
                             "grow: use 0 there (the clients' own CPU is reported apart)")
    args = parser.parse_args(argv)
    if not os.environ.get("CIFARMIX_DATA"):
        print("error: set CIFARMIX_DATA to cifar-10-python.tar.gz (the bench never downloads)", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory(prefix="cifarmix-classroom-") as temp:
        home, logs = Path(temp) / "home", Path(temp)
        home.mkdir()
        started = time.perf_counter()
        server = start_server(args.processes, home, logs)
        os.nice(args.nice)  # the clients below the server (which started at our priority)
        try:
            url = f"http://127.0.0.1:{server.port}"
            pids = all_pids(server)
            print(f"server: {args.processes} process(es), pids {pids}, up in {time.perf_counter() - started:.0f} s")
            asyncio.run(warm_up(server.backends))
            if not args.skip_cost:
                spent = asyncio.run(cost(url, pids, args.cost_games, args.mixer_steps))
                print("\n| interaction | server CPU-s (mean) | n |\n|---|---|---|")
                for kind, values in spent.items():
                    print(f"| {kind} | {np.mean(values):.3f} | {len(values)} |")
            rows = []
            for players in args.players:
                before_games, before_cpu = saved_games(home), process_cpu(pids)
                clients_before, wall = os.times(), time.perf_counter()
                found = asyncio.run(load(url, players, tuple(args.think)))
                wall = time.perf_counter() - wall
                clients = os.times()
                rows.append((players, found, (process_cpu(pids) - before_cpu) / wall,
                             (clients.user + clients.system - clients_before.user - clients_before.system) / wall,
                             saved_games(home) - before_games, wall))
                for failure in found["failures"][:5]:
                    print("  failed:", failure)
        finally:
            server.stop()
    think = f"{args.think[0]:g}-{args.think[1]:g} s"
    print(f"\n{args.processes} process(es), thinking {think}, clients at nice +{args.nice}; "
          "latency p50 / p95 in seconds")
    print("| players | page load | pick | submit → reveal | next → picture | finish | server CPU | clients CPU "
          "| games saved | wall |\n|---|---|---|---|---|---|---|---|---|---|")
    for players, found, server_cores, client_cores, saved, wall in rows:
        cells = []
        for kind in ("page load", "pick", "submit", "next", "finish"):
            values = found["latencies"].get(kind, [])
            cells.append(f"{percentile(values, 50):.2f} / {percentile(values, 95):.2f}")
        print(f"| {players} | " + " | ".join(cells) + f" | {server_cores:.2f} cores | {client_cores:.2f} cores "
              f"| {saved}/{players} | {wall:.0f} s |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
