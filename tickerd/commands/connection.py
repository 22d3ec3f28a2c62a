"""Connection commands: PING, ECHO, QUIT, RESET, HELLO, AUTH, SELECT and CLIENT."""

from __future__ import annotations

import hmac
import re
import time

from .. import REDIS_COMPAT_VERSION, __version__
from ..context import Session
from ..replies import OK, Reply, ReplyError, SimpleString, Value, Verbatim
from .base import IMMEDIATE, NOAUTH, NOT_AN_INTEGER, SYNTAX_ERROR, command, parse_int, text

PONG = SimpleString("PONG")
WRONGPASS = ReplyError("WRONGPASS invalid username-password pair or user is disabled.")
# Client names and library names: printable ASCII without spaces, as Redis requires.
_NAME = re.compile(rb"[!-~]*")


def ping(_session: Session, args: list[bytes]) -> Reply:
    if len(args) > 2:
        return ReplyError("ERR wrong number of arguments for 'ping' command")
    return args[1] if len(args) == 2 else PONG


def echo(_session: Session, args: list[bytes]) -> Reply:
    return args[1]


def quit_(session: Session, _args: list[bytes]) -> Reply:
    session.closing = True
    return OK


def reset(session: Session, _args: list[bytes]) -> Reply:
    session.reset()
    return SimpleString("RESET")


def select(_session: Session, args: list[bytes]) -> Reply:
    index = parse_int(args[1])
    if index is None:
        return NOT_AN_INTEGER
    return OK if index == 0 else ReplyError("ERR DB index is out of range")


def _password_ok(session: Session, user: bytes, password: bytes) -> bool:
    required = session.server.config.server.requirepass
    if user != b"default":
        return False
    return not required or hmac.compare_digest(password, required.encode())


def auth(session: Session, args: list[bytes]) -> Reply:
    if len(args) > 3:
        return SYNTAX_ERROR
    if len(args) == 2 and not session.server.config.server.requirepass:
        return ReplyError(
            "ERR AUTH <password> called without any password configured for the default user. "
            "Are you sure your configuration is correct?"
        )
    user, password = (b"default", args[1]) if len(args) == 2 else (args[1], args[2])
    if not _password_ok(session, user, password):
        return WRONGPASS
    session.authenticated = True
    return OK


def hello(session: Session, args: list[bytes]) -> Reply:
    protocol = session.protocol
    if len(args) > 1:
        version = parse_int(args[1])
        if version is None:
            return ReplyError("ERR Protocol version is not an integer or out of range")
        if version not in (2, 3):
            return ReplyError("NOPROTO unsupported protocol version")
        protocol = version
    credentials: tuple[bytes, bytes] | None = None
    name: bytes | None = None
    i = 2
    while i < len(args):
        option = args[i].lower()
        if option == b"auth" and i + 2 < len(args):
            credentials = (args[i + 1], args[i + 2])
            i += 3
        elif option == b"setname" and i + 1 < len(args):
            name = args[i + 1]
            i += 2
        else:
            return ReplyError(f"ERR Syntax error in HELLO option '{text(args[i])}'")
    if credentials is not None:
        if not _password_ok(session, *credentials):
            return WRONGPASS
        session.authenticated = True
    if not session.authenticated:
        return ReplyError(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the "
            "HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and "
            "select the RESP protocol version at the same time"
        )
    if name is not None:
        refused = _set_name(session, name)
        if refused is not None:
            return refused
    session.protocol = protocol
    reply: dict[Value, Value] = {
        "server": "redis",
        "version": REDIS_COMPAT_VERSION,
        "proto": protocol,
        "id": session.id,
        "mode": "standalone",
        "role": "master",
        "modules": [],
        "tickerd_version": __version__,
    }
    return reply


def _set_name(session: Session, name: bytes) -> ReplyError | None:
    if not _NAME.fullmatch(name):
        return ReplyError("ERR Client names cannot contain spaces, newlines or special characters.")
    session.name = name.decode()
    return None


def client_id(session: Session, _args: list[bytes]) -> Reply:
    return session.id


def client_getname(session: Session, _args: list[bytes]) -> Reply:
    return session.name or None


def client_setname(session: Session, args: list[bytes]) -> Reply:
    return _set_name(session, args[2]) or OK


def client_setinfo(session: Session, args: list[bytes]) -> Reply:
    attribute, value = args[2].lower(), args[3]
    if attribute not in (b"lib-name", b"lib-ver"):
        return ReplyError(f"ERR Unrecognized option '{text(args[2])}'")
    if not _NAME.fullmatch(value):
        return ReplyError(
            f"ERR {attribute.decode()} cannot contain spaces, newlines or special characters."
        )
    if attribute == b"lib-name":
        session.lib_name = value.decode()
    else:
        session.lib_ver = value.decode()
    return OK


def describe(session: Session, now: float) -> str:
    """One CLIENT LIST line (without the newline): every field of Redis 7.2, in its order.

    Buffer sizes that the connection keeps to itself are reported as 0; clients parse the
    fields (redis-py's client_info() reads qbuf and obl), they do not act on them.
    """
    queued = session.multi
    flags = "x" if queued is not None else "N"
    multi_mem = getattr(queued, "size", 0)  # counted as they were queued
    fields = [
        ("id", session.id),
        ("addr", session.addr),
        ("laddr", session.laddr),
        ("fd", session.fd),
        ("name", session.name),
        ("age", int(now - session.created)),
        ("idle", int(now - session.last_active)),
        ("flags", flags),
        ("db", 0),
        ("sub", 0),
        ("psub", 0),
        ("ssub", 0),
        ("multi", -1 if queued is None else len(queued)),
        ("watch", len(session.watched)),
        ("qbuf", 0),
        ("qbuf-free", 0),
        ("argv-mem", 0),
        ("multi-mem", multi_mem),
        ("rbs", 0),
        ("rbp", 0),
        ("obl", 0),
        ("oll", 0),
        ("omem", 0),
        ("tot-mem", multi_mem),
        ("events", "r"),
        ("cmd", session.last_command),
        ("user", "default"),
        ("redir", -1),
        ("resp", session.protocol),
        ("lib-name", session.lib_name),
        ("lib-ver", session.lib_ver),
    ]
    return " ".join(f"{key}={value}" for key, value in fields)


def client_info(session: Session, _args: list[bytes]) -> Reply:
    return Verbatim(describe(session, time.monotonic()) + "\n")


# CLIENT LIST TYPE: tickerd's clients are all normal ones; the other types exist in Redis.
_CLIENT_TYPES = (b"normal", b"master", b"replica", b"slave", b"pubsub")


def client_list(session: Session, args: list[bytes]) -> Reply:
    clients = list(session.server.clients.values())
    if len(args) == 4 and args[2].lower() == b"type":
        kind = args[3].lower()
        if kind not in _CLIENT_TYPES:
            shown = args[3].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")  # as %s
            return ReplyError(f"ERR Unknown client type '{shown}'")
        if kind != b"normal":
            clients = []
    elif len(args) > 3 and args[2].lower() == b"id":
        wanted = {parse_int(arg) for arg in args[3:]}
        if None in wanted:
            return ReplyError("ERR Invalid client ID")
        clients = [client for client in clients if client.id in wanted]
    elif len(args) != 2:
        return SYNTAX_ERROR
    now = time.monotonic()
    return Verbatim("".join(describe(client, now) + "\n" for client in clients))


def client_help(_session: Session, _args: list[bytes]) -> Reply:
    lines = [
        "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "GETNAME",
        "    Return the name of the current connection.",
        "ID",
        "    Return the ID of the current connection.",
        "INFO",
        "    Return information about the current client connection.",
        "LIST [TYPE (NORMAL|MASTER|REPLICA|PUBSUB)] [ID <id> [<id> ...]]",
        "    Return information about client connections.",
        "SETINFO <option> <value>",
        "    Set client meta attr. Options are:",
        "    * LIB-NAME: the client lib name.",
        "    * LIB-VER: the client lib version.",
        "SETNAME <name>",
        "    Assign the name <name> to the current connection.",
        "HELP",
        "    Print this help.",
    ]
    return [SimpleString(line) for line in lines]


def client(_session: Session, _args: list[bytes]) -> Reply:  # dispatched through subcommands
    raise AssertionError("CLIENT is dispatched by subcommand")


COMMANDS = [
    command("ping", ping, -1, "fast", group="connection", summary="PONG"),
    command("echo", echo, 2, "fast", group="connection", summary="Echo the argument"),
    command("quit", quit_, -1, NOAUTH, IMMEDIATE, "fast", group="connection", summary="Close"),
    command("reset", reset, 1, NOAUTH, IMMEDIATE, "fast", group="connection", summary="Reset"),
    command("select", select, 2, "fast", group="connection", summary="Only database 0"),
    command("auth", auth, -2, NOAUTH, "fast", group="connection", summary="Authenticate"),
    command("hello", hello, -1, NOAUTH, "fast", group="connection", summary="Handshake"),
    command(
        "client",
        client,
        -2,
        group="connection",
        summary="Connection introspection",
        subcommands=[
            command("client|id", client_id, 2, "fast", group="connection"),
            command("client|getname", client_getname, 2, "fast", group="connection"),
            command("client|setname", client_setname, 3, "fast", group="connection"),
            command("client|setinfo", client_setinfo, 4, "fast", group="connection"),
            command("client|info", client_info, 2, group="connection"),
            command("client|list", client_list, -2, group="connection"),
            command("client|help", client_help, 2, group="connection"),
        ],
    ),
]
