"""Voice menus: the decision logic of a `menu` step (keys in, actions out), with no I/O.

`pbxd.ivr.menu` is the pure state machine the menu step's handler
(`pbxd.calls.steps.menu`) drives with the caller's keys, its prompts ending and its timer.
"""
