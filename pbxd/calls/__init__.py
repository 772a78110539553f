"""pbxd.calls."""
