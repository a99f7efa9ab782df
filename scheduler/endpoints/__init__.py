"""longrun.scheduler.endpoints: the HTTP endpoints longrun serves on loopback (the scripted model)."""
