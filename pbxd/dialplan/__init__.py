"""pbxd.dialplan."""
