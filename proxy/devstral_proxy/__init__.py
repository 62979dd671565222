"""The I/O half of devstral-proxy: HTTP server, upstream pool, routing, config and CLI.

It asks translate/ what to send and what to answer; translate/ never imports it.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("devstral-proxy")  # one place for the version: pyproject.toml
except PackageNotFoundError:  # run from a checkout that was never installed
    __version__ = "0+unknown"
