"""The checker on hand-made histories, and its negative controls: each must turn a run red."""

from __future__ import annotations

from pathlib import Path

from .checker import check, percentile
from .history import Recorder, append, exec_log, load


def complete(directory: Path, job: str, start: float, end: float, pid: int = 100) -> None:
    record = {"kind": "done", "job": job, "attempt": 1, "pid": pid, "start": start, "t": end}
    append(exec_log(directory, pid), record)


def enqueued(recorder: Recorder, *jobs: str) -> None:
    for job in jobs:
        recorder.invoke(job)
        recorder.ack(job, duplicate=False)


def test_a_clean_history_is_green(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path)
    enqueued(recorder, "a", "b")
    complete(tmp_path, "a", 1.0, 2.0)
    complete(tmp_path, "b", 1.0, 2.0, pid=101)
    report = check(load(tmp_path))
    assert report.ok, report.summary()
    assert (report.acknowledged, report.completed) == (2, 2)


def test_negative_control_a_job_that_never_completes_is_lost(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path)
    enqueued(recorder, "a", "never")
    complete(tmp_path, "a", 1.0, 2.0)
    report = check(load(tmp_path))
    assert report.lost == ["never"]
    assert not report.ok


def test_negative_control_a_dropped_completion_record_is_a_loss(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path)
    enqueued(recorder, "a", "b", "c")
    for job in ("a", "b", "c"):
        complete(tmp_path, job, 1.0, 2.0)
    log = exec_log(tmp_path, 100)
    lines = log.read_text().splitlines(keepends=True)
    log.write_text("".join(line for line in lines if '"b"' not in line))
    report = check(load(tmp_path))
    assert report.lost == ["b"]
    assert not report.ok


def test_negative_control_a_phantom_acknowledgement_is_a_loss(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path)
    enqueued(recorder, "a")
    recorder.ack("phantom", duplicate=False)  # acknowledged, but nothing was ever stored
    complete(tmp_path, "a", 1.0, 2.0)
    report = check(load(tmp_path))
    assert report.lost == ["phantom"]
    assert not report.ok


def test_negative_control_a_completion_nobody_enqueued_is_unexpected(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path)
    enqueued(recorder, "a")
    complete(tmp_path, "a", 1.0, 2.0)
    complete(tmp_path, "ghost", 1.0, 2.0)
    report = check(load(tmp_path))
    assert report.unexpected == ["ghost"]
    assert not report.ok


def test_a_duplicate_without_a_fault_is_unexplained(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path)
    enqueued(recorder, "a")
    complete(tmp_path, "a", 1.0, 2.0)
    complete(tmp_path, "a", 5.0, 6.0, pid=101)
    recorder.fault("sigkill", "worker", 10.0)  # after both runs: explains nothing
    report = check(load(tmp_path))
    assert [(d.job, d.completions, d.explained) for d in report.duplicates] == [("a", 2, False)]
    assert not report.ok


def test_a_fault_between_two_runs_explains_the_duplicate(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path)
    enqueued(recorder, "a", "b")
    complete(tmp_path, "a", 1.0, 2.0)
    complete(tmp_path, "a", 5.0, 6.0, pid=101)
    complete(tmp_path, "b", 1.0, 2.0)
    complete(tmp_path, "b", 5.0, 6.0, pid=101)
    recorder.fault("sigkill", "worker 100", 3.0)  # between the runs of a
    recorder.fault("sigstop", "worker 100", 0.0, 1.5)  # during the first run of b
    report = check(load(tmp_path))
    assert [d.explained for d in report.duplicates] == [True, True]
    assert report.ok, report.summary()


def test_dead_letters_are_not_lost_but_must_be_expected(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path)
    enqueued(recorder, "poison", "mate")
    recorder.dead("poison", "crashed")
    recorder.dead("mate", "crashed")
    report = check(load(tmp_path), expected_dead={"poison"})
    assert report.lost == []
    assert report.unexpected_dead == ["mate"]
    assert not report.ok


def test_a_line_cut_short_by_a_kill_is_skipped(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path)
    enqueued(recorder, "a")
    complete(tmp_path, "a", 1.0, 2.0)
    with exec_log(tmp_path, 100).open("a") as log:
        log.write('{"kind":"done","job":"b","att')
    assert check(load(tmp_path)).ok


def test_latency_runs_from_the_acknowledgement_to_the_first_completion(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path)
    enqueued(recorder, "a")
    acked = load(tmp_path).acks["a"]
    complete(tmp_path, "a", acked, acked + 2.0)
    complete(tmp_path, "a", acked, acked + 5.0, pid=101)
    latency = check(load(tmp_path)).latency
    assert 1.9 < latency.max < 2.1


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 0.5), percentile(values, 0.99), percentile(values, 1.0)) == (
        50.0,
        99.0,
        100.0,
    )
