"""The play step: prompts to the caller, before answering (early media) or after.

Played on a ringing inbound channel, a prompt does not answer it: Asterisk sends 183
Session Progress with the audio (trace `early_media_playback`), so the caller hears the
greeting without being billed. With `answer` the caller is answered first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from pbxd.ari import Event, PlaybackFinished
from pbxd.calls.journal import PromptPlayed, PromptStarted
from pbxd.calls.states import CallState
from pbxd.calls.steps.base import StepHandler
from pbxd.dialplan.flow import PlayStep, StepOutcome

if TYPE_CHECKING:
    from pbxd.calls.session import CallSession

log = structlog.get_logger("pbxd.calls")

# A playback Asterisk never finishes (an unknown media scheme does that): go on after this.
PLAY_BACKSTOP_SECONDS = 300.0
BACKSTOP_TIMER = "step_play_backstop"


class PlayHandler(StepHandler[PlayStep]):
    """Plays the step's prompts as one playback, then goes on."""

    playback: str | None = None

    async def enter(self) -> StepOutcome | None:
        """Answer if asked, then start the playback; the step ends when it finishes."""
        session = self.session
        session.to(CallState.PLAYING)
        unanswered = session.record.answered_at is None
        if self.step.answer and unanswered and not await session.answer_caller(None):
            return None
        playback = session.next_playback()
        # Journaled before Asterisk is asked: a restart lets this very playback finish.
        session.journal.add(PromptStarted(session.clock.now(), self.step.name, playback))
        self.playback = await session.play(self.step.prompts, playback)
        if self.playback is None:
            return None  # the caller is gone: the session ends the call
        session.note(f"greeting: {', '.join(self.step.prompts)}")
        session.arm(BACKSTOP_TIMER, PLAY_BACKSTOP_SECONDS)
        return None

    @classmethod
    def adopt(
        cls, step: PlayStep, session: CallSession, started: PromptStarted | None
    ) -> PlayHandler:
        """The handler of an announcement a previous run left its caller hearing; `started`:
        the playback it journaled for it, if the journal kept it."""
        handler = cls(step, session)
        handler.playback = started.playback if started is not None else None
        return handler

    async def resume(self) -> StepOutcome | None:
        """After a restart: the announcement still playing is heard to its end, then the flow
        goes on; one over meanwhile was heard: the flow goes on now. One the journal lost (or
        never asked) plays again from the start, any lost prompt still playing stopped first."""
        session = self.session
        stopped = await session.stop_unrecorded_prompts()
        playing = self.playback is not None and await session.playback_plays(self.playback)
        if self.playback is not None and not stopped:
            if playing:
                session.note(f"adopted after restart: {self.step.name} still playing")
                log.info("announcement_adopted", step=self.step.name, prompt="playing")
                session.arm(BACKSTOP_TIMER, PLAY_BACKSTOP_SECONDS)
                return None
            session.note(f"adopted after restart: {self.step.name} played meanwhile")
            log.info("announcement_adopted", step=self.step.name, prompt="over")
            return self._played(True)
        if self.playback is not None and playing:
            await session.stop_playback(self.playback)
        self.playback = None
        session.note(f"adopted after restart: {self.step.name} again from the start")
        log.info("announcement_adopted", step=self.step.name, prompt="again")
        return await self.enter()

    async def on_event(self, event: Event) -> StepOutcome | None:
        """Our playback finished: played out (`done`) or not (`failed`), the flow goes on."""
        if not isinstance(event, PlaybackFinished) or event.playback.id != self.playback:
            return None
        if self.session.caller_leaving:
            self.playback = None
            return StepOutcome.ABANDONED  # cut by the caller's hangup: nothing follows
        return self._played(event.playback.state == "done")

    async def on_timer(self, name: str, key: str) -> StepOutcome | None:
        """The playback never finished: stop it and go on."""
        if name != BACKSTOP_TIMER or self.playback is None:
            return None
        await self.session.stop_playback(self.playback)
        return self._played(False)

    def _played(self, completed: bool) -> StepOutcome:
        session = self.session
        early = session.record.answered_at is None
        for prompt in self.step.prompts:
            session.journal.add(
                PromptPlayed(session.clock.now(), self.step.name, prompt, early, completed)
            )
        self.playback = None
        return StepOutcome.PLAYED
