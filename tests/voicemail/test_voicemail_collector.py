"""Copying messages off Asterisk: durable jobs, retries on the test's clock, no loss, no double."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from structlog.testing import capture_logs

from pbxd.sim.media import wav_bytes as make_wav
from pbxd.voicemail.collector import RecordingCollector
from pbxd.voicemail.messages import Message, message_id_of
from pbxd.voicemail.store import MessageStore

from .conftest import T0, AsteriskRecordings, ManualClock

DID = "+33170000001"
PARIS = "Europe/Paris"


class MailSpy:
    """Records what would be mailed (the real Outbox has its own tests, with an SMTP server)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []

    def enqueue(self, message: Message, to: str, timezone: str) -> bool:
        self.sent.append((message.message_id, to, timezone))
        return True


def left(call_id: str, recording: str, seconds: int = 12) -> Message:
    return Message(
        message_id_of(call_id, recording),
        DID,
        call_id,
        recorded_at=T0,
        duration=seconds,
        mailbox="reception",
        caller_number="+33612345678",
    )


def collector_on(
    root: Path, recordings: AsteriskRecordings, clock: ManualClock, mail: MailSpy | None = None
) -> RecordingCollector:
    return RecordingCollector(
        MessageStore(root), recordings, clock, mail=mail, retry_initial=5, retry_max=60
    )


async def test_a_message_is_kept_mailed_and_removed_from_asterisk(
    tmp_path: Path, recordings: AsteriskRecordings, clock: ManualClock
) -> None:
    recordings.files["vm-c1"] = make_wav(12)
    mail = MailSpy()
    collector = collector_on(tmp_path, recordings, clock, mail)
    await collector.keep("vm-c1", left("c1", "vm-c1"), email="desk@acme.example", timezone=PARIS)
    assert [j.recording for j in collector.pending()] == ["vm-c1"]  # durable before any I/O
    assert await collector.collect_due() == 1
    assert collector.store.audio(DID, "vm-c1") == make_wav(12)
    assert collector.store.get(DID, "vm-c1").call_id == "c1"
    assert recordings.files == {} and recordings.deletes == ["vm-c1"]
    assert mail.sent == [("vm-c1", "desk@acme.example", PARIS)]
    assert collector.pending() == []
    assert await collector.collect_due() == 0 and len(mail.sent) == 1


async def test_asterisk_away_is_retried_with_backoff_and_nothing_is_lost(
    tmp_path: Path, recordings: AsteriskRecordings, clock: ManualClock
) -> None:
    recordings.files["vm-c1"] = make_wav(3)
    recordings.reachable = False
    collector = collector_on(tmp_path, recordings, clock)
    await collector.keep("vm-c1", left("c1", "vm-c1"), email=None, timezone=PARIS)
    with capture_logs() as logs:
        assert await collector.collect_due() == 0
        await clock.advance(4.9)
        assert await collector.collect_due() == 0  # not before the backoff
        await clock.advance(0.1)
        assert await collector.collect_due() == 0  # second failure: next in 10 s
        assert collector.next_due() == 10
    retries = [e for e in logs if e["event"] == "voicemail_collect_retry"]
    assert [e["retry_in"] for e in retries] == [5, 10]
    assert collector.store.messages(DID) == [] and len(collector.pending()) == 1
    recordings.reachable = True
    await clock.advance(10)
    assert await collector.collect_due() == 1
    assert [m.message_id for m in collector.store.messages(DID)] == ["vm-c1"]


async def test_a_restart_finishes_the_jobs_of_the_previous_run(
    tmp_path: Path, recordings: AsteriskRecordings, clock: ManualClock
) -> None:
    recordings.files["vm-c1"] = make_wav(3)
    recordings.reachable = False
    mail = MailSpy()
    first = collector_on(tmp_path, recordings, clock, mail)
    await first.keep("vm-c1", left("c1", "vm-c1"), email="desk@acme.example", timezone=PARIS)
    await first.collect_due()  # fails: Asterisk away; then the daemon stops
    recordings.reachable = True
    second = collector_on(tmp_path, recordings, ManualClock(), mail)
    assert await second.collect_due() == 1  # due at once, whatever the old backoff said
    assert second.store.has(DID, "vm-c1") and len(mail.sent) == 1


async def test_a_crash_after_saving_neither_fetches_nor_mails_twice(
    tmp_path: Path, recordings: AsteriskRecordings, clock: ManualClock
) -> None:
    recordings.files["vm-c1"] = make_wav(3)
    mail = MailSpy()
    collector = collector_on(tmp_path, recordings, clock, mail)
    await collector.keep("vm-c1", left("c1", "vm-c1"), email="desk@acme.example", timezone=PARIS)
    real_delete = recordings.delete

    async def delete_fails(name: str) -> None:
        recordings.reachable = False
        await real_delete(name)

    recordings.delete = delete_fails  # type: ignore[method-assign]
    assert await collector.collect_due() == 0  # saved and mailed, then the delete failed
    recordings.delete = real_delete  # type: ignore[method-assign]
    recordings.reachable = True
    restarted = collector_on(tmp_path, recordings, ManualClock(), mail)
    assert await restarted.collect_due() == 1
    assert recordings.fetches == ["vm-c1"]  # fetched once
    assert len(mail.sent) == 1  # mailed once
    assert recordings.files == {}


async def test_a_recording_asterisk_lost_is_logged_and_given_up(
    tmp_path: Path, recordings: AsteriskRecordings, clock: ManualClock
) -> None:
    collector = collector_on(tmp_path, recordings, clock)
    await collector.keep("vm-gone", left("c9", "vm-gone"), email=None, timezone=PARIS)
    with capture_logs() as logs:
        assert await collector.collect_due() == 1  # settled: nothing more can be done
    assert collector.lost == 1 and collector.pending() == []
    [lost] = [e for e in logs if e["event"] == "voicemail_recording_lost"]
    assert lost["call_id"] == "c9" and lost["log_level"] == "error"


async def test_a_discarded_recording_is_only_deleted(
    tmp_path: Path, recordings: AsteriskRecordings, clock: ManualClock
) -> None:
    recordings.files["vm-short"] = make_wav(1)
    collector = collector_on(tmp_path, recordings, clock)
    await collector.discard("vm-short")
    assert await collector.collect_due() == 1
    assert recordings.files == {} and recordings.fetches == []
    assert collector.store.messages(DID) == []


async def _until(condition: Callable[[], bool], what: str) -> None:
    """Wait for file I/O done in threads (bounded: a hang fails, time never decides)."""
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


async def test_the_task_works_on_its_own_and_retries_on_the_clock(
    tmp_path: Path, recordings: AsteriskRecordings, clock: ManualClock
) -> None:
    recordings.files["vm-c1"] = make_wav(3)
    recordings.reachable = False
    collector = collector_on(tmp_path, recordings, clock)
    collector.start()
    try:
        with capture_logs() as logs:
            await collector.keep("vm-c1", left("c1", "vm-c1"), email=None, timezone=PARIS)
            await _until(lambda: clock.sleepers == 1, "the backoff after the first attempt")
        assert [e["event"] for e in logs].count("voicemail_collect_retry") == 1
        recordings.reachable = True
        await clock.advance(4)
        assert not collector.store.has(DID, "vm-c1")  # the backoff holds
        await clock.advance(1)
        await _until(lambda: collector.store.has(DID, "vm-c1"), "kept after the retry")
        await _until(lambda: not collector.pending(), "job done")
    finally:
        await collector.stop()
    assert recordings.files == {}
