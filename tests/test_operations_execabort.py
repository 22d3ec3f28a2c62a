"""EXEC refused outright is answered with EXECABORT, as Redis does.

Redis's ``rejectCommand`` turns any refusal of EXEC itself (NOAUTH, wrong arity) into
``-EXECABORT Transaction discarded because of: <reason>`` and ends the transaction.
"""

from __future__ import annotations

import pytest

from tests.servers import RedisServer, Tickerd
from tests.servers import command as c
from tests.test_operations import (
    NOAUTH,
    _secured_exchange,
    secured,
    secured_redis,
)

__all__ = ["secured", "secured_redis"]  # the fixtures, shared with test_operations


def test_exec_refused_before_auth_is_execabort(
    secured: Tickerd, secured_redis: RedisServer
) -> None:
    request = c("MULTI") + c("INCR", "users") + c("EXEC") + c("PING")
    expected = (
        NOAUTH
        + NOAUTH
        + b"-EXECABORT Transaction discarded because of: NOAUTH Authentication required.\r\n"
        + NOAUTH
    )
    assert _secured_exchange(secured_redis.port, request) == expected
    assert _secured_exchange(secured.port, request) == expected


@pytest.mark.parametrize(
    "request_bytes",
    [c("EXEC", "x"), c("MULTI") + c("EXEC", "x") + c("EXEC")],
    ids=["outside multi", "inside multi"],
)
def test_exec_with_wrong_arity_is_execabort(
    request_bytes: bytes, tickerd: Tickerd, redis_server: RedisServer
) -> None:
    assert tickerd.send(request_bytes) == redis_server.send(request_bytes)
