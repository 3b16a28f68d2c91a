"""Worker liveness and the metrics text, without a server."""

from __future__ import annotations

from aioq.dashboard.data import WorkerChange
from aioq.dashboard.live import WorkerTracker, liveness
from aioq.dashboard.metrics import render_metrics
from aioq.wire import WorkerInfo


def info(beat: float, worker_id: str = "w1") -> WorkerInfo:
    return WorkerInfo(
        id=worker_id,
        hostname="h",
        pid=1,
        queues=["q"],
        concurrency=2,
        active=0,
        processed=3,
        failed=0,
        retried=0,
        started_at=0.0,
        heartbeat_at=beat,
        version="x",
    )


def test_liveness_thresholds() -> None:
    assert liveness(1.0, interval=1.0, ttl=3.0) == "alive"
    assert liveness(1.5, interval=1.0, ttl=3.0) == "alive"
    assert liveness(1.6, interval=1.0, ttl=3.0) == "stale"
    assert liveness(3.0, interval=1.0, ttl=3.0) == "dead"


def test_a_silent_worker_goes_stale_then_dead_then_is_forgotten() -> None:
    tracker = WorkerTracker(keep_dead=60.0)
    tracker.ttl = 30.0
    tracker.apply(WorkerChange("w1", info(100.0), at=100.0))
    tracker.apply(WorkerChange("w1", info(110.0), at=110.0))  # observed interval: 10 s
    assert [w["status"] for w in tracker.views(now=111.0)] == ["alive"]
    assert [w["status"] for w in tracker.views(now=126.0)] == ["stale"]
    dead = tracker.views(now=141.0)
    assert [w["status"] for w in dead] == ["dead"]
    assert dead[0]["dead_at"] == 140.0
    assert [w["status"] for w in tracker.views(now=199.0)] == ["dead"]
    assert tracker.views(now=201.0) == []


def test_a_deregistered_worker_is_dead_at_once_and_a_new_beat_revives_it() -> None:
    tracker = WorkerTracker()
    tracker.apply(WorkerChange("w1", info(100.0), at=100.0))
    tracker.apply(WorkerChange("w1", None, at=101.0))
    assert [(w["status"], w["dead_at"]) for w in tracker.views(now=101.5)] == [("dead", 101.0)]
    tracker.apply(WorkerChange("w1", info(102.0), at=102.0))
    assert [w["status"] for w in tracker.views(now=102.5)] == ["alive"]


def test_metrics_text_escapes_labels() -> None:
    queue = {
        "name": 'a"b',
        "queued": 1,
        "running": 2,
        "retrying": 0,
        "delayed": 0,
        "dead": 4,
        "workers": 1,
        "paused": True,
    }
    worker = {"id": "w1", "status": "alive", "processed": 5, "failed": 1, "active": 0}
    text = render_metrics([queue], [worker])
    assert 'aioq_queue_queued{queue="a\\"b"} 1' in text
    assert 'aioq_queue_paused{queue="a\\"b"} 1' in text
    assert 'aioq_workers{status="alive"} 1' in text
    assert 'aioq_worker_processed_total{worker="w1"} 5' in text
    assert text.endswith("\n")


def test_a_delete_of_a_sequence_already_gone_counts_as_gone() -> None:
    # The dashboard's abort of a running job races the worker's acknowledgement: the server
    # then answers the delete with 400 "sequence not found" (10043), not an error to show.
    from nats.js.errors import BadRequestError

    from aioq._nats.streams import gone

    assert gone(BadRequestError(code=400, err_code=10043, description="sequence 18 not found"))
    assert not gone(BadRequestError(code=400, err_code=10071, description="wrong last seq"))
