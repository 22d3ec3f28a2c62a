"""Shared fixtures: real servers started by the suite itself (see tests/servers.py, tests/mariadb.py)."""

pytest_plugins = ["tests.servers", "tests.mariadb"]
