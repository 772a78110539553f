"""AGI mode: FastAGI for admins who keep their own dialplan and want pbxd's routing and CDRs."""
