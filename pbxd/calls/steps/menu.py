"""The menu step: answer, play the menu, and let the caller's keys choose a branch.

The decisions are `pbxd.ivr.menu`'s (a pure state machine); this handler only feeds it the
caller's keys (ChannelDtmfReceived, RFC 4733 or SIP INFO alike: Asterisk reports both the
same way), the end of its prompts and its timer, and turns its actions into requests. A key
pressed during a prompt stops it (`DELETE /playbacks/{id}`; Asterisk then reports the
playback finished `done`, trace `ivr_menu_dtmf`), so that stale end is ignored by id.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from pbxd.ari import ChannelDtmfReceived, Event, PlaybackFinished
from pbxd.calls.journal import MenuPrompted
from pbxd.calls.states import CallState
from pbxd.calls.steps.base import StepHandler
from pbxd.dialplan.flow import MenuStep, StepName, StepOutcome
from pbxd.ivr import menu as rules_of_menus
from pbxd.ivr.menu import (
    Action,
    CancelWait,
    Choose,
    Fallback,
    GiveUp,
    Input,
    Key,
    MenuRules,
    MenuState,
    Play,
    Prompt,
    PromptDone,
    StopPrompt,
    TimerFired,
    Wait,
)

if TYPE_CHECKING:
    from pbxd.calls.session import CallSession

log = structlog.get_logger("pbxd.calls")

WAIT_TIMER = "step_menu_wait"
# A prompt Asterisk never finishes (an unknown media scheme): the menu goes on after this.
PROMPT_BACKSTOP_SECONDS = 300.0
BACKSTOP_TIMER = "step_menu_backstop"
_OUTCOME_OF = {GiveUp.TIMEOUT: StepOutcome.TIMEOUT, GiveUp.INVALID: StepOutcome.INVALID}


class MenuHandler(StepHandler[MenuStep]):
    """Runs one menu step."""

    def __init__(self, step: MenuStep, session: CallSession) -> None:
        super().__init__(step, session)
        self.rules = MenuRules(
            options=step.choices,
            repeat=step.repeat,
            timeout=step.timeout,
            digit_timeout=step.digit_timeout,
            retries=step.retries,
        )
        self.state = MenuState()
        self.playback: str | None = None
        self.chosen: StepName | None = None
        self.label: str | None = None

    async def enter(self) -> StepOutcome | None:
        """Answer the caller (keys need an answered call), then play the menu."""
        session = self.session
        session.to(CallState.MENU)
        if session.record.answered_at is None and not await session.answer_caller(None):
            return None
        self.state, actions = rules_of_menus.start(self.rules)
        session.note(f"menu {self.step.name}: {', '.join(self.step.prompts)}")
        return await self._act(actions)

    @classmethod
    def adopt(
        cls, step: MenuStep, session: CallSession, prompted: MenuPrompted | None
    ) -> MenuHandler:
        """The handler of a menu a previous run left its caller in; `prompted`: the last
        prompt it journaled there (its playback, the failures so far and the keys)."""
        handler = cls(step, session)
        if prompted is not None:
            handler.state = MenuState(failures=prompted.failures, keys=prompted.keys)
            handler.playback = prompted.playback
        return handler

    async def resume(self) -> StepOutcome | None:
        """After a restart: a prompt still playing goes on (its end comes to us); otherwise
        the menu plays again from the start. Failures counted before the restart still count;
        a key pressed while nobody listened is lost, so no entry is half-made. A prompt the
        journal lost is stopped, and the one it kept with it: the caller never hears an old
        prompt before (or under) the menu again."""
        session = self.session
        stopped = await session.stop_unrecorded_prompts()
        if self.playback is not None and await session.playback_plays(self.playback):
            if not stopped:
                session.note(f"adopted after restart: menu {self.step.name}, prompt still playing")
                log.info("menu_adopted", step=self.step.name, prompt="playing")
                session.arm(BACKSTOP_TIMER, PROMPT_BACKSTOP_SECONDS)
                return None
            await session.stop_playback(self.playback)
        self.playback = None
        self.state = MenuState(failures=self.state.failures, keys=self.state.keys)
        session.note(f"adopted after restart: menu {self.step.name} again from the start")
        log.info("menu_adopted", step=self.step.name, prompt="again", failures=self.state.failures)
        return await self._act((Play((Prompt.MENU,)),))

    async def on_event(self, event: Event) -> StepOutcome | None:
        """A key from the caller, or the end of our prompt."""
        if isinstance(event, ChannelDtmfReceived):
            if event.channel.id != self.session.caller.channel_id:
                return None
            return await self._feed(Key(event.digit))
        if isinstance(event, PlaybackFinished) and event.playback.id == self.playback:
            self.playback = None
            self.session.disarm(BACKSTOP_TIMER)
            if self.session.caller_leaving:
                return StepOutcome.ABANDONED
            return await self._feed(PromptDone())
        return None

    async def on_timer(self, name: str, key: str) -> StepOutcome | None:
        """The wait for a key is over, or a prompt never finished."""
        if name == WAIT_TIMER:
            return await self._feed(TimerFired())
        if name == BACKSTOP_TIMER and self.playback is not None:
            stuck, self.playback = self.playback, None
            await self.session.stop_playback(stuck)
            return await self._feed(PromptDone())
        return None

    async def on_caller_gone(self) -> StepOutcome | None:
        """Hung up mid-menu: the call log keeps the keys pressed so far."""
        return StepOutcome.ABANDONED

    def next_step(self, outcome: StepOutcome) -> StepName | None:
        """A chosen entry leads to its own branch; giving up to the fallback."""
        if outcome is StepOutcome.CHOSEN:
            return self.chosen
        return super().next_step(outcome)

    def path_label(self, outcome: StepOutcome) -> str | None:
        """`2>support` for a choice, the keys pressed otherwise (None when none)."""
        if self.label is not None:
            return self.label
        return self.state.keys or None

    async def _feed(self, event: Input) -> StepOutcome | None:
        self.state, actions = rules_of_menus.step(self.rules, self.state, event)
        return await self._act(actions)

    async def _act(self, actions: tuple[Action, ...]) -> StepOutcome | None:
        """Carry the machine's actions out, in order; the step's outcome once it is over."""
        session = self.session
        for action in actions:
            match action:
                case Play():
                    media = [m for prompt in action.prompts for m in self._media(prompt)]
                    playback = session.next_playback()
                    # Where a restart takes the menu up: this prompt, these failures and keys;
                    # journaled before Asterisk is asked, so a restart finds it by its id.
                    session.journal.add(
                        MenuPrompted(
                            session.clock.now(),
                            self.step.name,
                            playback,
                            self.state.failures,
                            self.state.keys,
                        )
                    )
                    self.playback = await session.play(media, playback)
                    if self.playback is None:
                        return None  # the caller is gone: the session ends the call
                    session.arm(BACKSTOP_TIMER, PROMPT_BACKSTOP_SECONDS)
                case StopPrompt():
                    if self.playback is not None:
                        playing, self.playback = self.playback, None
                        session.disarm(BACKSTOP_TIMER)
                        await session.stop_playback(playing)
                case Wait():
                    session.arm(WAIT_TIMER, action.seconds)
                case CancelWait():
                    session.disarm(WAIT_TIMER)
                case Choose():
                    branch = self.step.labels.get(action.entry, action.branch)
                    self.chosen = action.branch
                    self.label = f"{action.entry}>{branch}"
                    session.note(f"menu {self.step.name}: {action.entry} → {branch}")
                    log.info("menu_chosen", step=self.step.name, entry=action.entry, branch=branch)
                    return StepOutcome.CHOSEN
                case Fallback():
                    keys = self.state.keys
                    self.label = keys or None
                    session.note(f"menu {self.step.name}: {action.why} (keys: {keys or 'none'})")
                    log.info("menu_gave_up", step=self.step.name, why=str(action.why), keys=keys)
                    return _OUTCOME_OF[action.why]
        return None

    def _media(self, prompt: Prompt) -> tuple[str, ...]:
        step = self.step
        if prompt is Prompt.INVALID:
            return step.invalid_prompts
        if prompt is Prompt.TIMEOUT:
            return step.timeout_prompts
        return step.prompts
