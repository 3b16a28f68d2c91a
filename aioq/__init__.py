"""aioq: an asyncio job queue on NATS JetStream."""
