"""Before a leg is bridged: a whisper to the callee, and confirm calls (press 1 to accept).

When a leg with a whisper or confirm prompt answers, it is not bridged yet: its prompts play
to its channel only (the caller, still unanswered, hears ringing), and

- with `confirm`, only `1` accepts it; any other key, silence or a hang-up puts the leg down
  while the others keep ringing, so a mobile's voicemail never takes the call. The decision is
  a one-option menu of `pbxd.ivr.menu` (no retry), so barge-in and timeouts behave alike;
- with a whisper alone, the leg is accepted once its prompt has played.

The order of requests follows the real trace `captures/media/screening_press1`: the leg is
Up, its prompt plays, `1` arrives, the playback is stopped, then the caller is answered and
bridged with it; pbxd first marks the leg accepted (a channel variable, `SCREENING_VARIABLE`).

After a restart (`RingHandler.resume`), a callee who accepted is put through, never asked
again; one still hearing the prompt keeps hearing it; one who was deciding is asked once more
(a whisper alone, heard already, counts as accepted), and after a second restart only waits
for the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from pbxd.ivr import menu
from pbxd.ivr.menu import (
    Action,
    CancelWait,
    Choose,
    Fallback,
    Input,
    MenuRules,
    MenuState,
    Play,
    StopPrompt,
    Wait,
)

ACCEPT_KEY = "1"
ACCEPTED = "accepted"
# The leg channel's variable saying how its screening went, kept by Asterisk with the
# channel, so a restart knows it even when the journal's last batch was lost: `accepted`
# (set before the call is put through), or `asked-again` (prompted again after a restart:
# never a third time).
SCREENING_VARIABLE = "PBXD_SCREENING"
ASKED_AGAIN = "asked-again"
# How long a confirm waits for `1` after its prompt (FreePBX's confirm waits about as long).
CONFIRM_SECONDS = 6
SCREEN_TIMER = "step_screen"


class Verdict(StrEnum):
    """How the screening of a leg ended."""

    ACCEPTED = "accepted"
    REFUSED_KEY = "refused_key"  # a key other than 1
    REFUSED_SILENCE = "refused_silence"  # nothing pressed (a voicemail, a pocket)


CONFIRM_RULES = MenuRules(
    options={ACCEPT_KEY: ACCEPTED}, timeout=CONFIRM_SECONDS, digit_timeout=1, retries=0
)


@dataclass
class LegScreening:
    """The screening of one answered leg: its playback and the confirm's state."""

    whisper: tuple[str, ...]
    confirm: tuple[str, ...]  # empty: no confirmation asked
    playback: str | None = None
    state: MenuState = field(default_factory=MenuState)
    keys: str = ""

    @property
    def prompts(self) -> tuple[str, ...]:
        """Everything played to the callee, in one playback: the whisper, then the question."""
        return (*self.whisper, *self.confirm)

    def start(self) -> tuple[Action, ...]:
        """The prompts play (the question after the whisper, when there is one)."""
        self.state, actions = menu.start(CONFIRM_RULES)
        return actions

    def feed(self, event: Input) -> tuple[Action, ...] | Verdict:
        """The next actions, or the verdict once there is one."""
        if not self.confirm:
            # A whisper alone: accepted once it has played (a key just cuts it short).
            return Verdict.ACCEPTED
        self.state, actions = menu.step(CONFIRM_RULES, self.state, event)
        self.keys = self.state.keys
        for action in actions:
            if isinstance(action, Choose):
                return Verdict.ACCEPTED
            if isinstance(action, Fallback):
                return (
                    Verdict.REFUSED_SILENCE
                    if action.why is menu.GiveUp.TIMEOUT
                    else Verdict.REFUSED_KEY
                )
        return tuple(a for a in actions if isinstance(a, Play | StopPrompt | Wait | CancelWait))
