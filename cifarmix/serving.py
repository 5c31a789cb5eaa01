"""Serve the app for a classroom: one Streamlit process, or several behind nginx with sticky sessions.

One Streamlit process runs every session's script in one Python interpreter, so it uses about one core however
many a machine has (issue 16: past ~25 players the second core idled). ``serve`` starts ``processes`` Streamlit
servers on internal ports of 127.0.0.1 and nginx in front of them on the public address. Streamlit keeps a
session's state, its uploaded files and its ``st.image`` media inside the process that runs it, so every request
of one browser (the page, the ``/_stcore/stream`` websocket, ``/_stcore/upload_file``, ``/media/...``) must reach
the same process: nginx gives a browser without one a random ``cifarmix_route`` cookie on its first response, and
routes by a consistent hash of that cookie. All processes share the run store of ``$CIFARMIX_HOME`` (SQLite in
WAL mode takes writers from several processes).

    python -m cifarmix serve --processes 2 --address 0.0.0.0 --port 8501

No Streamlit import here: the servers are child processes (``python -m streamlit run app.py``).
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from cifarmix import paths

ROUTE_COOKIE = "cifarmix_route"
START_TIMEOUT_S = 180  # a cold server loads TensorFlow and CIFAR-10 before it answers
NGINX_CANDIDATES = ("nginx", "/usr/sbin/nginx")
STREAMLIT_OPTIONS = ("--server.headless", "true", "--server.fileWatcherType", "none",
                     "--browser.gatherUsageStats", "false")


class ServeError(RuntimeError):
    """The server cannot start: nginx missing, a port taken, a Streamlit process that died."""


def find_nginx() -> str:
    """The nginx executable, or ServeError saying how to install it."""
    for candidate in NGINX_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    raise ServeError("more than one process needs nginx in front of them, and nginx is not installed: "
                     "`sudo apt-get install nginx-light` (Debian/Ubuntu), or serve with --processes 1")


def free_port(address: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


def nginx_config(backends: Sequence[int], address: str, port: int, work_dir: Path) -> str:
    """nginx's configuration: ``address:port`` in front of the Streamlit servers on 127.0.0.1:``backends``, a
    browser kept on one of them by the ``cifarmix_route`` cookie (set by nginx itself when absent). Every file
    nginx writes goes to ``work_dir``, so it runs without root."""
    servers = "\n".join(f"        server 127.0.0.1:{backend} max_fails=0;" for backend in backends)
    listen = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
    return f"""daemon off;
worker_processes 1;
pid {work_dir}/nginx.pid;
error_log {work_dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {work_dir}/body;
    proxy_temp_path {work_dir}/proxy;
    fastcgi_temp_path {work_dir}/fastcgi;
    uwsgi_temp_path {work_dir}/uwsgi;
    scgi_temp_path {work_dir}/scgi;
    client_max_body_size 200m;  # Streamlit's own upload limit is lower (server.maxUploadSize)
    # A browser's route: its cookie, or (first request) a new random one that the response sets.
    map $cookie_{ROUTE_COOKIE} $cifarmix_route {{ "" $request_id; default $cookie_{ROUTE_COOKIE}; }}
    map $cookie_{ROUTE_COOKIE} $cifarmix_set_route {{
        "" "{ROUTE_COOKIE}=$request_id; Path=/; HttpOnly; SameSite=Lax"; default ""; }}
    map $http_upgrade $connection_upgrade {{ default upgrade; "" close; }}
    upstream streamlit {{
        hash $cifarmix_route consistent;
{servers}
    }}
    server {{
        listen {listen};
        location / {{
            proxy_pass http://streamlit;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_read_timeout 1d;  # a session's websocket stays open for the whole lesson
            proxy_send_timeout 1d;
            proxy_buffering off;
            add_header Set-Cookie $cifarmix_set_route always;
        }}
    }}
}}
"""


def streamlit_command(address: str, port: int, extra: Sequence[str] = ()) -> list[str]:
    """``python -m streamlit run app.py`` on ``address:port``, headless, file watcher off, ``extra`` options."""
    app = paths.project_root() / "app.py"
    return [sys.executable, "-m", "streamlit", "run", str(app), "--server.address", address,
            "--server.port", str(port), *STREAMLIT_OPTIONS, *extra]


def wait_healthy(url: str, process: subprocess.Popen, timeout_s: float = START_TIMEOUT_S) -> None:
    """Until ``url``'s Streamlit health check (``/_stcore/health``) answers; ServeError if ``process`` (the server,
    or the proxy in front of it) exits first or nothing answers within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServeError(f"the server for {url} exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise ServeError(f"the server for {url} did not answer within {timeout_s:.0f} s")


class Server:
    """The running processes of ``serve``: Streamlit servers, and nginx when there are several. ``start()``
    returns once all answer; ``stop()`` ends them all (it is safe to call twice)."""

    def __init__(self, processes: int = 1, address: str = "127.0.0.1", port: int = 8501,
                 extra: Sequence[str] = (), log_dir: Path | None = None):
        if processes < 1:
            raise ServeError(f"--processes must be 1 or more; got {processes}")
        self.processes, self.address, self.port, self.extra = processes, address, port, list(extra)
        self.nginx = find_nginx() if processes > 1 else None
        self.work_dir = Path(tempfile.mkdtemp(prefix="cifarmix-serve-"))
        self.log_dir = log_dir
        self.children: list[subprocess.Popen] = []
        self.backends: list[int] = []

    def _spawn(self, command: list[str], name: str) -> subprocess.Popen:
        log = None if self.log_dir is None else open(self.log_dir / f"{name}.log", "wb")  # noqa: SIM115
        child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT if log else None,
                                 stdin=subprocess.DEVNULL)
        self.children.append(child)
        return child

    def start(self) -> None:
        try:
            if self.nginx is None:
                child = self._spawn(streamlit_command(self.address, self.port, self.extra), "streamlit")
                self.backends = [self.port]
                wait_healthy(f"http://127.0.0.1:{self.port}", child)
                return
            self.backends = [free_port() for _ in range(self.processes)]
            servers = [self._spawn(streamlit_command("127.0.0.1", backend, self.extra), f"streamlit-{backend}")
                       for backend in self.backends]
            for backend, child in zip(self.backends, servers):
                wait_healthy(f"http://127.0.0.1:{backend}", child)
            config = self.work_dir / "nginx.conf"
            config.write_text(nginx_config(self.backends, self.address, self.port, self.work_dir))
            proxy = self._spawn([self.nginx, "-c", str(config), "-p", str(self.work_dir)], "nginx")
            self._wait_proxy(proxy)
        except BaseException:
            self.stop()
            raise

    def _wait_proxy(self, proxy: subprocess.Popen) -> None:
        host = "127.0.0.1" if self.address in ("0.0.0.0", "::", "") else self.address
        try:
            wait_healthy(f"http://{host}:{self.port}", proxy, timeout_s=20)
        except ServeError as error:
            log = self.work_dir / "error.log"
            detail = log.read_text().strip() if log.exists() else ""
            raise ServeError(f"nginx did not start: {error}. {detail}".strip()) from None

    def pids(self) -> list[int]:
        return [child.pid for child in self.children if child.poll() is None]

    def wait(self) -> int:
        """Until one process exits (or Ctrl-C / SIGTERM); returns its exit code after stopping the others."""
        stopping = []
        previous = signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
        try:
            while not stopping:
                for child in self.children:
                    if child.poll() is not None:
                        return child.returncode
                time.sleep(0.5)
            return 0
        except KeyboardInterrupt:
            return 0
        finally:
            signal.signal(signal.SIGTERM, previous)
            self.stop()

    def stop(self) -> None:
        for child in self.children:
            if child.poll() is None:
                child.terminate()
        for child in self.children:
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        self.children = []
        shutil.rmtree(self.work_dir, ignore_errors=True)

    def __enter__(self) -> "Server":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
