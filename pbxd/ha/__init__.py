"""An active/standby pair of pbxd for one Asterisk: a PostgreSQL lock decides who owns the
Stasis application (`lock.py`), a lease fences an active that can no longer prove it holds it
(`lease.py`), and `pair.py` runs the standby's wait, the takeover and the fencing."""
