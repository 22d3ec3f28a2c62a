"""Shared fixtures: real servers the suite starts itself (tests/servers.py, tests/mariadb.py)."""

pytest_plugins = ["tests.servers", "tests.mariadb"]
