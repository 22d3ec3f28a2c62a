"""The command line: parse arguments, load the configuration, run the server. Nothing else."""

from __future__ import annotations

import argparse
import logging
import os
import sys

import uvloop

from . import __version__, config
from .server import Server, build_store
from .stores import StoreError

log = logging.getLogger("tickerd")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tickerd",
        description="Unique, increasing 64-bit ids over the Redis protocol.",
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        default=os.environ.get("TICKERD_CONFIG"),
        help="the INI configuration file (default: $TICKERD_CONFIG, else built-in defaults: "
        "the sqlite store in ./tickerd.sqlite3, sequences created on first use)",
    )
    parser.add_argument(
        "--bind",
        metavar="ADDRESS",
        nargs="+",
        help="listen on these addresses (overrides [server] bind)",
    )
    parser.add_argument(
        "--port", type=int, metavar="PORT", help="listen on this port (overrides [server] port)"
    )
    parser.add_argument(
        "--check-config",
        action="store_true",
        help="validate the configuration and open the store, then exit: 0 if usable, else 1",
    )
    parser.add_argument("--version", action="version", version=f"tickerd {__version__}")
    return parser


def load_config(args: argparse.Namespace) -> config.Config:
    """The configuration the arguments name, with --bind and --port applied."""
    loaded = config.load(args.config) if args.config else config.Config()
    if args.port is not None and not 1 <= args.port <= 65535:
        raise config.ConfigError([f"--port {args.port}: expected a port number from 1 to 65535"])
    bind = tuple(args.bind) if args.bind else None
    return loaded.with_listen(bind, args.port)


async def _check(loaded: config.Config) -> None:
    store = build_store(loaded)
    await store.start()
    try:
        for name in loaded.sequences.names:
            await store.ensure_table(loaded.store.table_prefix + name)
    finally:
        await store.close()


def main(argv: list[str] | None = None) -> int:
    """Run tickerd; the exit status is 0 after a clean shutdown."""
    args = _parser().parse_args(argv)
    try:
        loaded = load_config(args)
    except config.ConfigError as exc:
        for problem in exc.problems:
            print(f"tickerd: {problem}", file=sys.stderr)
        return 1
    logging.basicConfig(
        level=loaded.server.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        if args.check_config:
            uvloop.run(_check(loaded))
            print(f"tickerd: configuration {loaded.source} is valid and the store is usable")
            return 0
        uvloop.run(Server(loaded).serve())
    except StoreError as exc:
        print(f"tickerd: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"tickerd: cannot listen: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
