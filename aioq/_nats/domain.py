"""JetStream domains: reaching a cluster's JetStream through a leaf node.

Since nats-server 2.7 a leaf link carries JetStream API requests and key-value writes only
when they are addressed to a domain (``$JS.<domain>.API...``); job subjects cross as they are.
"""

from __future__ import annotations

from typing import Any, cast

from nats.js import JetStreamContext
from nats.js.kv import KeyValue

__all__ = ["api_prefix", "in_domain", "kv_write_prefix"]

_DEFAULT_API = "$JS.API"


def api_prefix(js: JetStreamContext) -> str:
    """The JetStream API subject prefix: ``$JS.API``, or ``$JS.<domain>.API`` with a domain."""
    return str(getattr(js, "_prefix", _DEFAULT_API))


def kv_write_prefix(js: JetStreamContext, bucket: str) -> str:
    """Where writes to `bucket` go: ``$KV.<bucket>.``, behind the API prefix in a domain.

    A leaf node passes ``$KV.>`` on to its cluster only addressed to the cluster's domain
    (``$JS.<domain>.API.$KV...``), as nats.go's key-value store does; reads and watches keep
    the bucket's own subjects.
    """
    prefix = api_prefix(js)
    own = f"$KV.{bucket}."
    return own if prefix == _DEFAULT_API else f"{prefix}.{own}"


class _DomainWrites:
    """A JetStream context whose publishes to ``$KV.`` subjects go through the domain."""

    def __init__(self, js: JetStreamContext) -> None:
        self._js = js
        self._api = api_prefix(js)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._js, name)

    async def publish(self, subject: str, *args: Any, **kwargs: Any) -> Any:
        if subject.startswith("$KV."):
            subject = f"{self._api}.{subject}"
        return await self._js.publish(subject, *args, **kwargs)


def in_domain(js: JetStreamContext, kv: KeyValue) -> KeyValue:
    """`kv`, writing through the API prefix when `js` addresses a domain."""
    if api_prefix(js) == _DEFAULT_API:
        return kv
    return KeyValue(
        name=kv._name,
        stream=kv._stream,
        pre=kv._pre,
        js=cast(JetStreamContext, _DomainWrites(js)),
        direct=kv._direct,
    )
