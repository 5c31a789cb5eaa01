"""cifarmix.serving: nginx's configuration keeps a browser on one Streamlit process; clear errors before starting.
(A live server with two processes behind nginx is tested in tests/test_classroom.py.)"""

from __future__ import annotations

import pytest

from cifarmix import serving


def test_the_proxy_routes_by_its_own_cookie_to_every_backend(tmp_path):
    config = serving.nginx_config([9001, 9002], "0.0.0.0", 8501, tmp_path)
    assert "listen 0.0.0.0:8501;" in config
    assert "server 127.0.0.1:9001" in config and "server 127.0.0.1:9002" in config
    assert "hash $cifarmix_route consistent;" in config
    # a browser without the cookie gets one (a random id), and keeps it for the websocket, uploads and media
    assert f'map $cookie_{serving.ROUTE_COOKIE} $cifarmix_route {{ "" $request_id;' in config
    assert "add_header Set-Cookie $cifarmix_set_route always;" in config
    assert "proxy_set_header Upgrade $http_upgrade;" in config and "proxy_read_timeout 1d;" in config
    assert f"pid {tmp_path}/nginx.pid;" in config  # every file nginx writes is in its own folder: no root needed
    assert "listen [::]:8501;" in serving.nginx_config([9001], "::", 8501, tmp_path)


def test_several_processes_without_nginx_say_how_to_get_it(monkeypatch):
    monkeypatch.setattr(serving.shutil, "which", lambda name: None)
    with pytest.raises(serving.ServeError, match="apt-get install nginx-light.*--processes 1"):
        serving.Server(processes=2)
    serving.Server(processes=1).stop()  # one process needs no proxy


def test_at_least_one_process():
    with pytest.raises(serving.ServeError, match="1 or more"):
        serving.Server(processes=0)


def test_the_streamlit_command_is_headless_without_a_file_watcher():
    command = serving.streamlit_command("127.0.0.1", 9001, ["--server.maxUploadSize", "20"])
    assert command[1:4] == ["-m", "streamlit", "run"] and command[4].endswith("app.py")
    assert "--server.fileWatcherType" in command and command[command.index("--server.fileWatcherType") + 1] == "none"
    assert command[-2:] == ["--server.maxUploadSize", "20"]


def test_the_serve_command_names_what_is_missing(monkeypatch, capsys):
    from cifarmix import cli

    monkeypatch.setattr(serving.shutil, "which", lambda name: None)
    assert cli.main(["serve", "--processes", "2", "--port", "8599"]) == 2
    assert "nginx is not installed" in capsys.readouterr().err
    args = cli.build_parser().parse_args(["serve", "--", "--server.maxUploadSize", "20"])
    assert (args.processes, args.address, args.port) == (1, "0.0.0.0", 8501)
    assert args.streamlit_options[-2:] == ["--server.maxUploadSize", "20"]
