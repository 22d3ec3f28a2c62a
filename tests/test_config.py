"""The configuration: defaults, every validation problem named by section and key, the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tickerd import config
from tickerd.config import ConfigError, loads


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        loads(text)
    return caught.value.problems


def test_built_in_defaults_serve_any_sequence_from_sqlite() -> None:
    defaults = config.Config()
    assert defaults.server.bind == ("127.0.0.1",)
    assert defaults.server.port == 6390
    assert defaults.store.backend == "sqlite"
    assert defaults.store.path == "tickerd.sqlite3"
    assert defaults.sequences.auto_create is True


def test_a_full_file_is_read_into_typed_values() -> None:
    loaded = loads(
        """
        [server]
        bind = 127.0.0.1 ::1   ; two addresses
        port = 7000
        maxclients = 5
        timeout = 30
        [store]
        table_prefix = t_
        [sequences]
        names = users user:id a.b-c
        auto_create = no
        """.replace("\n        ", "\n")
    )
    assert loaded.server.bind == ("127.0.0.1", "::1")
    assert loaded.server.port == 7000
    assert loaded.server.maxclients == 5
    assert loaded.server.timeout == 30
    assert loaded.store.table_prefix == "t_"
    assert loaded.sequences.names == ("users", "user:id", "a.b-c")
    assert loaded.sequences.auto_create is False


def test_a_file_without_sequences_section_creates_nothing_and_is_refused() -> None:
    assert problems("[server]\nport = 7000\n") == [
        "[sequences] names is empty and auto_create = no: no sequence could be served"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[server]\nprot = 1\n", "[server] prot: unknown key"),
        ("[servers]\n", "[servers]: unknown section"),
        ("[server]\nport = 70000\n", "[server] port = '70000': expected a port number"),
        ("[server]\nport = x\n", "[server] port = 'x': "),
        ("[server]\nmaxclients = 0\n", "[server] maxclients = '0': expected a number from 1"),
        ("[store]\nbackend = redis\n", "[store] backend = 'redis': expected one of sqlite, mysql"),
        ("[store]\ntable_prefix = a-b\n", "[store] table_prefix = 'a-b': may use only"),
        ("[sequences]\nauto_create = maybe\n", "[sequences] auto_create = 'maybe': expected yes"),
        ("[sequences]\nnames = a;b\n", "[sequences] names: 'a;b': sequence names may"),
        ("[sequences]\nnames = bad/name\n", "[sequences] names: 'bad/name': sequence names may"),
        ("[sequences]\nnames = " + "x" * 60 + "\n", "may be at most 56 characters"),
    ],
)
def test_each_problem_names_section_key_and_value(text: str, expected: str) -> None:
    found = problems(
        text + "[sequences]\nauto_create = yes\n" if "[sequences]" not in text else text
    )
    assert any(problem.startswith(expected) or expected in problem for problem in found), found


def test_names_differing_only_in_case_are_refused(tmp_path: Path) -> None:
    found = problems("[sequences]\nnames = users posts Users\n")
    assert found == [
        "[sequences] names: 'Users' differs only in case from 'users': their tables would be "
        "one table; keep one of them"
    ]
    path = tmp_path / "case.ini"
    path.write_text(f"[store]\npath = {tmp_path}/t.sqlite3\n[sequences]\nnames = users Users\n")
    result = run_cli("--config", str(path), "--check-config", cwd=tmp_path)
    assert result.returncode == 1
    assert "[sequences] names: 'Users' differs only in case from 'users'" in result.stderr


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[server]\nport = abc\n", "[server] port = 'abc': expected a port number from 1 to 65535"),
        (
            "[server]\nmaxclients = 0\n",
            "[server] maxclients = '0': expected a number from 1 to 1000000",
        ),
        (
            "[server]\ntimeout = -1\n",
            "[server] timeout = '-1': expected a number from 0 to 31536000",
        ),
        (
            "[store]\nrequest_timeout = 0\n",
            "[store] request_timeout = '0': expected a number of seconds from 0.1 to 600",
        ),
        ("[server]\nport = 1\nport = 2\n", "[server] port: given twice (again on line 3)"),
        ("[server]\n[store]\n[server]\n", "[server]: section given twice (again on line 3)"),
        (
            "[store]\nbackend = mysql\n[mysql:a b]\n",
            "[mysql:a b]: server names may use only letters, digits and _ - .",
        ),
        ("[store]\nbackend = mysql\n[mysql:]\n", "[mysql:]: server names may use only"),
    ],
)
def test_problems_read_as_plain_sentences(text: str, expected: str) -> None:
    found = problems(text + "[sequences]\nnames = users\n")
    assert any(problem.startswith(expected) for problem in found), found
    assert not any("e+" in problem for problem in found), found


def test_server_names_may_use_letters_digits_and_dots_dashes_underscores() -> None:
    loaded = loads("[store]\nbackend = mysql\n[sequences]\nnames = users\n[mysql:db-1.east_2]\n")
    assert loaded.store.mysql[0].name == "db-1.east_2"


def test_a_duplicate_key_exits_1_naming_section_and_key(tmp_path: Path) -> None:
    path = tmp_path / "twice.ini"
    path.write_text("[sequences]\nnames = users\nnames = posts\n")
    result = run_cli("--config", str(path), "--check-config", cwd=tmp_path)
    assert result.returncode == 1
    assert "tickerd: [sequences] names: given twice" in result.stderr


def test_every_problem_is_reported_at_once() -> None:
    found = problems("[server]\nport = 0\nfoo = 1\n[store]\nbackend = x\n")
    assert len(found) == 4  # port, foo, backend, and no sequences


def test_mysql_servers_must_have_distinct_offsets_within_one_increment() -> None:
    base = "[store]\nbackend = mysql\n[sequences]\nnames = users\n"
    found = problems(
        base
        + "[mysql:a]\nauto_increment_increment = 2\nauto_increment_offset = 1\n"
        + "[mysql:b]\nauto_increment_increment = 2\nauto_increment_offset = 1\n"
    )
    assert found == [
        "[mysql:b] auto_increment_offset = 1 is also used by [mysql:a]: give every server a "
        "distinct offset, or two servers would issue the same tickets"
    ]
    found = problems(
        base
        + "[mysql:a]\nauto_increment_increment = 2\nauto_increment_offset = 1\n"
        + "[mysql:b]\nauto_increment_increment = 3\nauto_increment_offset = 2\n"
    )
    assert "auto_increment_increment differs between servers (a=2, b=3)" in found[0]
    found = problems(base + "[mysql:a]\nauto_increment_increment = 2\nauto_increment_offset = 3\n")
    assert found == [
        "[mysql:a] auto_increment_offset = 3: must be from 1 to auto_increment_increment (2)"
    ]
    found = problems(base)
    assert found == ["[store] backend = mysql needs at least one [mysql:<name>] section"]


def test_passwords_stay_out_of_reprs() -> None:
    loaded = loads(
        "[store]\nbackend = mysql\n[sequences]\nnames = users\n[mysql:a]\npassword = hunter2\n"
    )
    assert loaded.store.mysql[0].password == "hunter2"
    assert "hunter2" not in repr(loaded)


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tickerd", *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=cwd,
        check=False,
    )


def test_check_config_reports_every_problem_and_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "bad.ini"
    path.write_text("[server]\nport = 0\n[sequences]\nnames = ok bad/one\n")
    result = run_cli("--config", str(path), "--check-config", cwd=tmp_path)
    assert result.returncode == 1
    assert "[server] port = '0'" in result.stderr
    assert "[sequences] names: 'bad/one'" in result.stderr


def test_check_config_opens_the_store_and_exits_0(tmp_path: Path) -> None:
    path = tmp_path / "good.ini"
    path.write_text(f"[store]\npath = {tmp_path}/t.sqlite3\n[sequences]\nnames = users\n")
    result = run_cli("--config", str(path), "--check-config", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "t.sqlite3").exists()


def test_check_config_fails_when_the_store_cannot_open(tmp_path: Path) -> None:
    path = tmp_path / "good.ini"
    path.write_text("[store]\npath = /nonexistent/dir/t.sqlite3\n[sequences]\nnames = users\n")
    result = run_cli("--config", str(path), "--check-config", cwd=tmp_path)
    assert result.returncode == 1
    assert "cannot open the sqlite store /nonexistent/dir/t.sqlite3" in result.stderr


def test_version_and_missing_file(tmp_path: Path) -> None:
    result = run_cli("--version", cwd=tmp_path)
    assert result.stdout.strip().startswith("tickerd ")
    result = run_cli("--config", str(tmp_path / "missing.ini"), cwd=tmp_path)
    assert result.returncode == 1
    assert "cannot read the configuration file" in result.stderr


def test_the_example_configuration_is_valid_and_shows_the_defaults() -> None:
    example = config.load(Path(__file__).parent.parent / "config.example.ini")
    assert example.server == config.ServerConfig()
    assert example.store == config.StoreConfig()
    assert example.sequences == config.SequencesConfig(names=("users", "posts"))


def test_a_file_that_is_not_utf8_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "bad.ini"
    path.write_bytes(b"[server]\nport = 1\xff\n")
    with pytest.raises(ConfigError) as caught:
        config.load(path)
    assert "is not UTF-8 text (byte 17)" in str(caught.value)
