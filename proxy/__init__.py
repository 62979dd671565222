"""The I/O half of devstral-proxy: HTTP server, upstream pool, routing, config and CLI.

It asks translate/ what to send and what to answer; translate/ never imports it.
"""

__version__ = "0.1.0"
