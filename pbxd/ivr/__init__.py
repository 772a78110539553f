"""Voice menus, prompts and DTMF collection (not built yet: see the issue tracker)."""
