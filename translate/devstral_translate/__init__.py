"""Sans-IO translation between the OpenAI wire format and what a backend accepts.

Pure functions and small state machines over bytes: no sockets, no asyncio, no clock.
"""
