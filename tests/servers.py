"""Fixtures that start real tickerd and redis-server processes."""
