"""pbxd.config."""
