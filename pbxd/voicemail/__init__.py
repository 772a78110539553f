"""Voicemail messages of a number's box: copied off Asterisk, kept on disk, mailed to the box."""
