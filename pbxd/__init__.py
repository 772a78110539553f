"""pbxd: call control for Asterisk virtual numbers over ARI."""

__version__ = "0.1.0"
