"""Call paths: typed steps, their stored form, how people read them; voicemail dispositions."""

from __future__ import annotations

import pytest

from pbxd.cdr.records import (
    CallRecord,
    Disposition,
    PathError,
    PathStep,
    StepKind,
    StepOutcome,
    VoicemailLeft,
    disposition_after_voicemail,
    format_path,
    path_from_text,
    path_to_text,
)

K, Out = StepKind, StepOutcome


@pytest.mark.parametrize(
    ("path", "text"),
    [
        ((PathStep(K.SCHEDULE, Out.CLOSED), PathStep(K.VOICEMAIL, Out.LEFT)), "closed → voicemail"),
        (
            (
                PathStep(K.SCHEDULE, Out.OPEN),
                PathStep(K.PLAY, Out.PLAYED, "acme-welcome"),
                PathStep(K.RING, Out.NO_ANSWER),
                PathStep(K.VOICEMAIL, Out.LEFT),
            ),
            "greeting → ring → no answer → voicemail",
        ),
        (
            (
                PathStep(K.RING, Out.UNAVAILABLE),
                PathStep(K.GOTO, Out.JUMPED, "on-call"),
                PathStep(K.RING, Out.ANSWERED),
            ),
            "ring → unavailable → goto on-call → ring → answered",
        ),
        (
            (PathStep(K.RING, Out.BUSY), PathStep(K.VOICEMAIL, Out.NO_MESSAGE)),
            "ring → busy → voicemail (no message)",
        ),
        ((PathStep(K.VOICEMAIL, Out.TOO_SHORT),), "voicemail (too short)"),
        ((PathStep(K.PLAY, Out.ABANDONED),), "greeting → caller hung up"),
        ((PathStep(K.SCHEDULE, Out.CLOSED), PathStep(K.HANGUP, Out.HUNG_UP)), "closed → hangup"),
        ((), ""),
        (
            (PathStep(K.MENU, Out.CHOSEN, "2>support"), PathStep(K.GOTO, Out.JUMPED, "support")),
            "menu: 2 → support → goto support",
        ),
        (
            (PathStep(K.MENU, Out.TIMEOUT), PathStep(K.HANGUP, Out.HUNG_UP)),
            "menu → timeout → hangup",
        ),
        ((PathStep(K.MENU, Out.INVALID, "998"),), "menu: 998 → invalid"),
        ((PathStep(K.MENU, Out.ABANDONED, "1"),), "menu → caller hung up"),
    ],
)
def test_paths_read_as_people_say_them(path: tuple[PathStep, ...], text: str) -> None:
    assert format_path(path) == text


def test_the_stored_form_reads_back_typed() -> None:
    path = (
        PathStep(K.SCHEDULE, Out.CLOSED),
        PathStep(K.GOTO, Out.JUMPED, "after hours: 50% off"),  # spaces and ':' survive
        PathStep(K.MENU, Out.CHOSEN, "2"),
        PathStep(K.VOICEMAIL, Out.LEFT),
    )
    stored = path_to_text(path)
    assert stored == (
        "schedule:closed goto:jumped:after%20hours%3A%2050%25%20off menu:chosen:2 voicemail:left"
    )
    back = path_from_text(stored)
    assert back == path
    assert all(isinstance(s.kind, StepKind) and isinstance(s.outcome, StepOutcome) for s in back)
    assert path_to_text(()) is None and path_from_text(None) == () and path_from_text("") == ()


@pytest.mark.parametrize("token", ["teleport:done", "ring:teleported", "ring", ":"])
def test_unknown_steps_are_refused_by_name(token: str) -> None:
    with pytest.raises(PathError, match="unknown call path step"):
        path_from_text(f"schedule:open {token}")


def test_a_kind_cannot_take_another_kinds_outcome() -> None:
    with pytest.raises(PathError, match="a schedule step cannot end answered"):
        PathStep(K.SCHEDULE, Out.ANSWERED)
    with pytest.raises(PathError):
        path_from_text("voicemail:busy")


def test_add_step_leaves_earlier_snapshots_alone() -> None:
    from datetime import UTC, datetime

    call = CallRecord("c", "+33170000001", started_at=datetime(2026, 12, 3, tzinfo=UTC))
    call.add_step(PathStep(K.SCHEDULE, Out.OPEN))
    queued = call.snapshot()
    call.add_step(PathStep(K.RING, Out.NO_ANSWER))
    assert len(queued.path) == 1 and len(call.path) == 2


@pytest.mark.parametrize(
    ("before", "left", "after"),
    [
        (Disposition.NO_ANSWER, VoicemailLeft("m", 12), Disposition.VOICEMAIL),
        (Disposition.CLOSED, VoicemailLeft("m", 3), Disposition.VOICEMAIL),
        # Reached the box and left nothing: still missed, for the reason nobody took it.
        (Disposition.NO_ANSWER, None, Disposition.NO_ANSWER),
        (Disposition.CLOSED, None, Disposition.CLOSED),
        (Disposition.BUSY, None, Disposition.BUSY),
    ],
)
def test_disposition_after_voicemail(
    before: Disposition, left: VoicemailLeft | None, after: Disposition
) -> None:
    assert disposition_after_voicemail(before, left) is after


def test_a_voicemail_needs_an_id_and_a_length() -> None:
    with pytest.raises(ValueError):
        VoicemailLeft("", 3)
    with pytest.raises(ValueError):
        VoicemailLeft("m", -1)
