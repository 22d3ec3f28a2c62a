"""The configuration: an INI file read once into frozen dataclasses, with every check made here.

This is the only module that reads the file. Every problem names its section, key and value, and
all problems are reported together (``tickerd --check-config`` prints them all).
"""

from __future__ import annotations

import configparser
import dataclasses
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

# A sequence name: Redis-style keys (``user:id``, ``counter:__rand_int__``) that are also safe,
# quoted, as part of a MySQL or SQLite table name.
SEQUENCE_NAME = re.compile(r"[A-Za-z0-9_.:\-]+")
TABLE_PREFIX = re.compile(r"[A-Za-z0-9_]*")
# A [mysql:<name>] server name: INFO keys and log lines are built from it.
SERVER_NAME = re.compile(r"[A-Za-z0-9_.\-]+")
MAX_TABLE_NAME = 64  # MySQL's limit on an identifier
LOG_LEVELS = ("debug", "info", "warning", "error")


class ConfigError(Exception):
    """The configuration is unusable; ``problems`` lists every reason, one sentence each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """``[server]``: how clients reach tickerd."""

    bind: tuple[str, ...] = ("127.0.0.1",)
    port: int = 6390
    unixsocket: str = ""
    requirepass: str = ""
    maxclients: int = 10000
    timeout: int = 0
    log_level: str = "info"


@dataclass(frozen=True, slots=True)
class MysqlServerConfig:
    """``[mysql:<name>]``: one MySQL ticket server."""

    name: str
    host: str = "127.0.0.1"
    port: int = 3306
    unix_socket: str = ""
    user: str = "tickerd"
    password: str = field(default="", repr=False)
    database: str = "tickets"
    auto_increment_increment: int = 1
    auto_increment_offset: int = 1
    connect_timeout: float = 2.0

    @property
    def address(self) -> str:
        """Where the server is, for logs and INFO (never the password)."""
        return self.unix_socket or f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """``[store]``: where tickets come from."""

    backend: Literal["sqlite", "mysql"] = "sqlite"
    path: str = "tickerd.sqlite3"
    table_prefix: str = "tickets_"
    strategy: Literal["round-robin", "failover"] = "round-robin"
    request_timeout: float = 2.0
    mysql: tuple[MysqlServerConfig, ...] = ()


@dataclass(frozen=True, slots=True)
class SequencesConfig:
    """``[sequences]``: which sequences are served."""

    names: tuple[str, ...] = ()
    auto_create: bool = False
    allow_set: bool = False


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration, validated."""

    server: ServerConfig = ServerConfig()
    store: StoreConfig = StoreConfig()
    sequences: SequencesConfig = SequencesConfig(auto_create=True)
    source: str = "(built-in defaults)"

    def with_listen(self, bind: tuple[str, ...] | None, port: int | None) -> Config:
        """This config with the command line's ``--bind`` and ``--port`` applied."""
        server = self.server
        if bind is not None:
            server = dataclasses.replace(server, bind=bind)
        if port is not None:
            server = dataclasses.replace(server, port=port)
        return dataclasses.replace(self, server=server)


def sequence_name_problem(name: str, table_prefix: str) -> str | None:
    """Why ``name`` cannot be a sequence, or None if it can."""
    if not SEQUENCE_NAME.fullmatch(name):
        return "sequence names may use only letters, digits and _ . : -"
    if len(table_prefix) + len(name) > MAX_TABLE_NAME:
        limit = MAX_TABLE_NAME - len(table_prefix)
        return f"sequence names may be at most {limit} characters long"
    return None


# -- reading the file ---------------------------------------------------------------------------


def _boolean(text: str) -> bool:
    value = configparser.ConfigParser.BOOLEAN_STATES.get(text.lower())
    if value is None:
        raise ValueError("expected yes or no")
    return value


def _plain(number: float) -> str:
    """A number as people write it: 1000000 and 0.1, never 1e+06."""
    return str(int(number)) if number == int(number) else repr(float(number))


def _ranged(low: float, high: float, kind: Callable[[str], Any], what: str) -> Callable[[str], Any]:
    expected = f"expected {what} from {_plain(low)} to {_plain(high)}"

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise ValueError(expected) from None
        if not low <= value <= high:
            raise ValueError(expected)
        return value

    return parse


def _integer(low: int, high: int) -> Callable[[str], Any]:
    return _ranged(low, high, int, "a number")


def _seconds(low: float, high: float) -> Callable[[str], Any]:
    return _ranged(low, high, float, "a number of seconds")


_port = _ranged(1, 65535, int, "a port number")


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in allowed:
            raise ValueError("expected one of " + ", ".join(allowed))
        return text

    return parse


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


def _text(text: str) -> str:
    return text


# Every key tickerd reads, per section, with its parser. A key not listed here is an error.
_SERVER_KEYS: dict[str, Callable[[str], Any]] = {
    "bind": _words,
    "port": _port,
    "unixsocket": _text,
    "requirepass": _text,
    "maxclients": _integer(1, 1_000_000),
    "timeout": _integer(0, 365 * 86400),
    "log_level": _choice(*LOG_LEVELS),
}
_STORE_KEYS: dict[str, Callable[[str], Any]] = {
    "backend": _choice("sqlite", "mysql"),
    "path": _text,
    "table_prefix": _text,
    "strategy": _choice("round-robin", "failover"),
    "request_timeout": _seconds(0.1, 600),
}
_SEQUENCES_KEYS: dict[str, Callable[[str], Any]] = {
    "names": _words,
    "auto_create": _boolean,
    "allow_set": _boolean,
}
_MYSQL_KEYS: dict[str, Callable[[str], Any]] = {
    "host": _text,
    "port": _port,
    "unix_socket": _text,
    "user": _text,
    "password": _text,
    "database": _text,
    "auto_increment_increment": _integer(1, 65535),
    "auto_increment_offset": _integer(1, 65535),
    "connect_timeout": _seconds(0.1, 600),
}


class _Reader:
    """Turns parsed INI sections into dataclass fields, collecting problems as it goes."""

    def __init__(self, parser: configparser.ConfigParser) -> None:
        self.parser = parser
        self.problems: list[str] = []

    def section(self, name: str, keys: dict[str, Callable[[str], Any]]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        if not self.parser.has_section(name):
            return values
        for key, raw in self.parser.items(name):
            parse = keys.get(key)
            if parse is None:
                known = ", ".join(keys)
                self.problems.append(f"[{name}] {key}: unknown key (known keys: {known})")
                continue
            try:
                values[key] = parse(raw.strip())
            except ValueError as exc:
                self.problems.append(f"[{name}] {key} = {raw!r}: {exc}")
        return values


def load(path: str | Path) -> Config:
    """Read and validate the INI file at ``path``; raise ConfigError listing every problem."""
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except OSError as exc:
        raise ConfigError([f"cannot read the configuration file {path}: {exc.strerror}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            [f"the configuration file {path} is not UTF-8 text (byte {exc.start})"]
        ) from None
    return loads(text, str(path))


def loads(text: str, source: str = "<string>") -> Config:
    """Like :func:`load`, from the text of an INI file (for tests and tools)."""
    parser = configparser.ConfigParser(
        interpolation=None, inline_comment_prefixes=(";", "#"), empty_lines_in_values=False
    )
    try:
        parser.read_string(text, source)
    except configparser.DuplicateSectionError as exc:
        raise ConfigError(
            [f"[{exc.section}]: section given twice (again on line {exc.lineno}): merge them"]
        ) from None
    except configparser.DuplicateOptionError as exc:
        raise ConfigError(
            [f"[{exc.section}] {exc.option}: given twice (again on line {exc.lineno}): keep one"]
        ) from None
    except configparser.Error as exc:
        raise ConfigError([f"{source}: {exc.message}"]) from None
    return _build(parser, source)


def _build(parser: configparser.ConfigParser, source: str) -> Config:
    reader = _Reader(parser)
    for name in parser.sections():
        if name not in ("server", "store", "sequences") and not name.startswith("mysql:"):
            reader.problems.append(
                f"[{name}]: unknown section (known: [server], [store], [sequences], [mysql:<name>])"
            )
    server = ServerConfig(**reader.section("server", _SERVER_KEYS))
    mysql = tuple(
        MysqlServerConfig(name=name.removeprefix("mysql:"), **reader.section(name, _MYSQL_KEYS))
        for name in parser.sections()
        if name.startswith("mysql:")
    )
    store = StoreConfig(**reader.section("store", _STORE_KEYS), mysql=mysql)
    sequences = SequencesConfig(**reader.section("sequences", _SEQUENCES_KEYS))
    config = Config(server=server, store=store, sequences=sequences, source=source)
    problems = reader.problems + list(_cross_checks(config))
    if problems:
        raise ConfigError(problems)
    return config


def _cross_checks(config: Config) -> Iterator[str]:
    """Problems that involve more than one key."""
    server, store, sequences = config.server, config.store, config.sequences
    if not server.bind and not server.unixsocket:
        yield "[server] bind is empty and unixsocket is not set: tickerd would listen nowhere"
    if not TABLE_PREFIX.fullmatch(store.table_prefix):
        yield (
            f"[store] table_prefix = {store.table_prefix!r}: "
            "may use only letters, digits and underscores"
        )
    folded: dict[str, str] = {}
    for name in sequences.names:
        problem = sequence_name_problem(name, store.table_prefix)
        if problem:
            yield f"[sequences] names: {name!r}: {problem}"
        first = folded.setdefault(name.lower(), name)
        if first != name:
            # Table names ignore case on SQLite and on MySQL under Windows and macOS.
            yield (
                f"[sequences] names: {name!r} differs only in case from {first!r}: "
                "their tables would be one table; keep one of them"
            )
    if not sequences.names and not sequences.auto_create:
        yield "[sequences] names is empty and auto_create = no: no sequence could be served"
    if store.backend == "sqlite" and not store.path:
        yield "[store] path is empty: the sqlite store needs a database file"
    for mysql in store.mysql:
        if not SERVER_NAME.fullmatch(mysql.name):
            yield (
                f"[mysql:{mysql.name}]: server names may use only letters, digits and _ - . "
                "(INFO keys are built from them)"
            )
    if store.backend == "mysql":
        yield from _mysql_checks(store)
    elif store.mysql:
        names = ", ".join(f"[mysql:{server.name}]" for server in store.mysql)
        yield f"{names}: only used with [store] backend = mysql (backend is {store.backend})"


def _mysql_checks(store: StoreConfig) -> Iterator[str]:
    servers = store.mysql
    if not servers:
        yield "[store] backend = mysql needs at least one [mysql:<name>] section"
        return
    increments = {server.auto_increment_increment for server in servers}
    if len(increments) > 1:
        listed = ", ".join(f"{s.name}={s.auto_increment_increment}" for s in servers)
        yield (
            f"auto_increment_increment differs between servers ({listed}): "
            "set the same value (usually the number of servers) in every [mysql:<name>]"
        )
    increment = max(increments)
    if len(servers) > increment:
        yield (
            f"{len(servers)} servers share auto_increment_increment = {increment}: "
            f"set it to at least {len(servers)} so that each server has its own offset"
        )
    seen: dict[int, str] = {}
    for server in servers:
        offset = server.auto_increment_offset
        if offset > server.auto_increment_increment:
            yield (
                f"[mysql:{server.name}] auto_increment_offset = {offset}: must be from 1 to "
                f"auto_increment_increment ({server.auto_increment_increment})"
            )
        if offset in seen:
            yield (
                f"[mysql:{server.name}] auto_increment_offset = {offset} is also used by "
                f"[mysql:{seen[offset]}]: give every server a distinct offset, "
                "or two servers would issue the same tickets"
            )
        seen.setdefault(offset, server.name)
        if not server.database:
            yield f"[mysql:{server.name}] database is empty"


__all__ = [
    "Config",
    "ConfigError",
    "MysqlServerConfig",
    "SequencesConfig",
    "ServerConfig",
    "StoreConfig",
    "load",
    "loads",
    "sequence_name_problem",
]
