"""pbxd.cli."""
