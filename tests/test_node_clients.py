"""Node.js clients (ioredis, node-redis), unmodified, with their defaults, against a real tickerd.

``tests/node/clients.mjs`` runs one scenario per client through a recording proxy and prints one
JSON line; the tests here check that report. ``make test`` installs the pinned packages first.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest

from tests.servers import REPO, Tickerd

NODE_DIR = REPO / "tests" / "node"
SCRIPT = NODE_DIR / "clients.mjs"
# The script gives up by itself after 30 s; this only guards against node itself hanging.
RUN_TIMEOUT = 60.0
REFUSAL = "tickets only move forward"
PIPELINE_SIZE = 5  # as in clients.mjs
ORDERED = ("get_in_pipeline", "get_in_multi")  # INCR, GET, INCR sent together

# Each run of the script, and the batches it issues besides the first two INCRs.
RUNS = {
    "ioredis": ("pipeline", "multi"),
    "ioredis-resp2": ("pipeline", "multi"),
    "node-redis": ("auto_pipeline", "multi", "pipeline"),
    "node-redis-resp2": ("auto_pipeline", "multi", "pipeline"),
}


@pytest.fixture(scope="module")
def report(tickerd: Tickerd) -> dict[str, Any]:
    """Run clients.mjs once against the module's tickerd; its parsed JSON report."""
    if not (NODE_DIR / "node_modules").is_dir():
        pytest.fail(
            "tests/node/node_modules is missing: run `make test` "
            "(it runs `npm ci --prefix tests/node`)"
        )
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: run `make test` or `sudo apt-get install nodejs npm`")
    done = subprocess.run(
        [node, str(SCRIPT), str(tickerd.port)],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
        cwd=NODE_DIR,
    )
    if done.returncode != 0:
        pytest.fail(
            f"clients.mjs exited with {done.returncode}\n"
            f"stdout: {done.stdout}\nstderr: {done.stderr}\ntickerd log:\n{tickerd.log}"
        )
    # Nothing on stderr: ioredis warns there when its INFO ready check fails, for one.
    assert done.stderr == ""
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["ok"] is True
    assert list(result["runs"]) == list(RUNS)
    return result


@pytest.fixture(params=list(RUNS))
def run(request: pytest.FixtureRequest, report: dict[str, Any]) -> dict[str, Any]:
    """One client's part of the report."""
    result: dict[str, Any] = report["runs"][request.param]
    return result


def test_every_ticket_of_the_run_is_unique_and_increasing(report: dict[str, Any]) -> None:
    # The clients ran one after the other, so their tickets must increase across them too.
    tickets = [ticket for run in report["runs"].values() for ticket in run["tickets"]]
    batches = sum(len(b) for b in RUNS.values())
    assert len(tickets) == len(RUNS) * (2 + 2 * len(ORDERED)) + batches * PIPELINE_SIZE
    assert tickets == sorted(set(tickets))


def test_incr_twice_then_get_gives_the_last(run: dict[str, Any]) -> None:
    first, second = run["incr"]
    assert 0 < first < second
    assert run["get"] == str(second)


def test_pipelines_and_transactions_give_increasing_tickets(run: dict[str, Any]) -> None:
    for batch in RUNS[run["client"]]:
        tickets = run[batch]
        assert len(tickets) == PIPELINE_SIZE, batch
        assert tickets == sorted(set(tickets)), batch
    assert run["commands"].count("MULTI") == run["commands"].count("EXEC") >= 1


@pytest.mark.parametrize("batch", ORDERED)
def test_get_between_two_incrs_sees_the_first(run: dict[str, Any], batch: str) -> None:
    # Replies in request order, as Redis: GET must not see a ticket drawn after it. (ioredis
    # .pipeline()/.multi(), node-redis Promise.all auto-pipelining and .multi().exec().)
    sent = run[batch]
    assert sent["after"] > sent["before"]
    assert sent["get"] == str(sent["before"])


def test_batches_reach_the_server_in_one_write(run: dict[str, Any]) -> None:
    # Pipelines and node-redis's auto-pipelining of concurrent commands: all INCRs at once.
    assert run["largest_write"] >= PIPELINE_SIZE


def test_ping_info_and_the_refused_command(run: dict[str, Any]) -> None:
    assert run["ping"] == "PONG"
    info = run["info"]
    assert info["loading"] == "0"  # ioredis's ready check waits for it
    assert {"Server", "Clients", "Persistence", "Stats"} <= set(info["sections"])
    assert REFUSAL in run["refused"]["message"]
    assert run["refused"]["message"].startswith("ERR ")


def test_each_client_connected_once_and_raised_no_error_event(run: dict[str, Any]) -> None:
    assert run["connections"] == 1  # no reconnect: the handshake and ready check passed
    assert run["emitted_errors"] == []


def test_what_each_client_sends_on_connect(run: dict[str, Any]) -> None:
    sent = [command.upper() for command in run["on_connect"]]
    resp3 = not run["client"].endswith("-resp2")
    assert ("HELLO 3" in sent) is resp3
    if resp3:
        assert sent[0] == "HELLO 3"
    assert any(command.startswith("CLIENT SETINFO LIB-NAME") for command in sent)
    if run["client"].startswith("ioredis"):
        assert sent[-1] == "INFO"  # the ready check, before ioredis lets any command through


def test_clients_quit_cleanly(run: dict[str, Any]) -> None:
    if run["client"] == "node-redis":
        assert run["quit"] == "closed"  # close(): waits for replies, closes without QUIT
    else:
        assert run["quit"] == "OK"
        assert run["commands"][-1] == "QUIT"


def test_tickerd_logged_no_error(report: dict[str, Any], tickerd: Tickerd) -> None:
    assert report["ok"]
    log = tickerd.log
    assert "ERROR" not in log
    assert "Traceback" not in log
