"""Helpers for testing code that uses aioq.

- `aioq.testing.pytest_plugin`: pytest fixtures on a real nats-server (loaded automatically
  once aioq is installed; see docs/testing.md).
- `aioq.testing.harness`: the same helpers without pytest: bind an app to a test server, run
  in-process workers, wait until queues are idle, simulate a shutdown.
"""
