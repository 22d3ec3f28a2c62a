"""systemd integration: Type=notify readiness and stopping notices, and the unit file itself."""

from __future__ import annotations

import configparser
import socket
from collections.abc import Callable
from pathlib import Path

from tests.servers import REPO, Tickerd


def test_notifies_ready_once_listening_and_stopping_on_sigterm(
    tickerd_factory: Callable[..., Tickerd], tmp_path: Path
) -> None:
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(path)
        notify.settimeout(15)
        server = tickerd_factory(env={"NOTIFY_SOCKET": path})
        assert notify.recv(4096) == b"READY=1"
        with server.client() as client:
            assert client.incr("users") >= 1
        assert server.stop() == 0
        assert notify.recv(4096) == b"STOPPING=1"


def test_the_unit_file_is_type_notify_and_checks_the_config_first() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment, method-assign]
    unit.read(REPO / "systemd" / "tickerd.service")
    service = unit["Service"]
    assert service["Type"] == "notify"
    assert "--check-config" in service["ExecStartPre"]
    assert service["ExecStart"].split()[1:] == ["--config", "/etc/tickerd/tickerd.ini"]
    assert unit["Install"]["WantedBy"] == "multi-user.target"
