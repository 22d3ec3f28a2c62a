"""Fixtures that start throwaway MariaDB servers."""
