"""Benchmark suite for aioq beside a raw nats-py ceiling and peer job queues (see README.md)."""
