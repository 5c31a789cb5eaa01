"""Which database the run store opens (``CIFARMIX_STORE``), and the one clear sentence it says when it cannot:
a URL it cannot read or of a database it does not speak, a PostgreSQL server that is down, refuses the login or
has no such database. Never a traceback, never the password."""

from __future__ import annotations

import socket

import pytest
from sqlalchemy.engine import make_url

from cifarmix import paths
from cifarmix.cli import main
from cifarmix.store import RunStore, StoreError

SECRET = "s3cret-pw"


def refused(monkeypatch, url: str) -> str:
    """The message of the StoreError that ``RunStore()`` raises with ``CIFARMIX_STORE=url`` (password masked)."""
    monkeypatch.setenv(paths.STORE_ENV, url)
    with pytest.raises(StoreError) as error:
        RunStore()
    message = str(error.value)
    assert SECRET not in message and "\n" not in message and "Traceback" not in message
    return message


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_without_a_setting_the_store_is_the_sqlite_file_under_the_home(cifarmix_home):
    assert paths.store_url() == f"sqlite:///{cifarmix_home / 'cifarmix.sqlite3'}"
    assert RunStore().path == cifarmix_home / "cifarmix.sqlite3"


def test_a_sqlite_url_or_a_file_path_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.STORE_ENV, f"sqlite:///{tmp_path / 'elsewhere' / 'store.sqlite3'}")
    assert RunStore().path == tmp_path / "elsewhere" / "store.sqlite3" and RunStore().dialect == "sqlite"
    assert RunStore(str(tmp_path / "given.sqlite3")).path == tmp_path / "given.sqlite3"  # an argument wins


def test_one_engine_per_database_per_process(tmp_path):
    assert RunStore(tmp_path / "a.sqlite3")._engine is RunStore(f"sqlite:///{tmp_path / 'a.sqlite3'}")._engine
    assert RunStore(tmp_path / "a.sqlite3")._engine is not RunStore(tmp_path / "b.sqlite3")._engine


def test_a_database_cifarmix_does_not_speak_is_named_with_the_ones_it_does(monkeypatch):
    message = refused(monkeypatch, f"mysql://teacher:{SECRET}@db.school/cifarmix")
    assert "mysql://teacher:***@db.school/cifarmix" in message and "SQLite or PostgreSQL, not 'mysql'" in message
    assert "CIFARMIX_STORE to postgresql://user:password@host:5432/database" in message


def test_text_that_is_no_url_is_refused(monkeypatch):
    assert "is not a database URL" in refused(monkeypatch, "/srv/cifarmix/store.sqlite3")


def test_a_url_that_cannot_be_read_says_how_to_write_it(monkeypatch):
    message = refused(monkeypatch, f"postgresql://teacher:{SECRET}@db.school:fivefourthreetwo/cifarmix")
    assert "cannot read its run store URL 'postgresql://teacher:***@" in message and "port a number" in message


def test_a_sqlite_store_needs_a_file(monkeypatch):
    assert "it needs a file" in refused(monkeypatch, "sqlite://")


def test_a_postgresql_server_that_is_down_is_named_and_not_waited_for(monkeypatch):
    port = free_port()  # nobody listens there
    message = refused(monkeypatch, f"postgresql://teacher:{SECRET}@127.0.0.1:{port}/cifarmix")
    assert f"postgresql://teacher:***@127.0.0.1:{port}/cifarmix:" in message
    assert "the server does not answer" in message and "Connection refused" in message
    assert "start PostgreSQL there, or correct the host and port" in message


def test_the_command_line_says_the_store_problem_in_one_line(monkeypatch, capsys):
    monkeypatch.setenv(paths.STORE_ENV, f"postgresql://teacher:{SECRET}@127.0.0.1:{free_port()}/cifarmix")
    assert main(["runs"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cifarmix cannot use its run store") and err.count("\n") == 1
    assert SECRET not in err and "Traceback" not in err


def test_a_login_the_server_refuses_is_said_so(postgres_server, monkeypatch):
    url = make_url(postgres_server.url).set(drivername="postgresql", username="no_such_teacher", password=SECRET)
    message = refused(monkeypatch, url.render_as_string(hide_password=False))
    assert "the server refused the login" in message and "correct the user and password" in message
    assert "no_such_teacher" in message


def test_a_database_the_server_does_not_have_is_said_so(postgres_server, monkeypatch):
    url = make_url(postgres_server.url).set(drivername="postgresql", database="no_such_store")
    message = refused(monkeypatch, url.render_as_string(hide_password=False))
    assert "the server has no such database" in message and "createdb" in message and "no_such_store" in message


def test_a_postgresql_store_shows_its_url_without_the_password(postgres_url):
    db = RunStore(postgres_url)
    password = make_url(postgres_url).password
    assert db.dialect == "postgresql" and db.path is None
    assert "***" in db.url and (not password or password not in db.url + repr(db))


def test_the_app_shows_one_message_for_a_store_server_that_is_down(monkeypatch, no_models, fresh_caches):
    from streamlit.testing.v1 import AppTest

    from pages import ui

    port = free_port()
    monkeypatch.setenv(paths.STORE_ENV, f"postgresql://teacher:{SECRET}@127.0.0.1:{port}/cifarmix")
    at = AppTest.from_file("../app.py", default_timeout=60).run()
    assert not at.exception
    [error] = at.error
    assert "cannot keep its files" in error.value and "the server does not answer" in error.value
    assert ui.escape_markdown(f"postgresql://teacher:***@127.0.0.1:{port}/cifarmix") in error.value
    assert SECRET not in error.value
