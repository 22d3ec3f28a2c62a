"""Shared fixtures: real servers the suite starts itself (tests/servers.py, tests/mariadb.py)."""

from hypothesis import settings

pytest_plugins = ["tests.servers", "tests.mariadb"]

# CI runs on 2 loaded cores: a slow example is not a failure, and a deadline would make it flaky.
settings.register_profile("tickerd", deadline=None)
settings.load_profile("tickerd")
