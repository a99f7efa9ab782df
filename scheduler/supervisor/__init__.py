"""longrun.scheduler.supervisor: the daemon (APScheduler and the reconcile loop), launching and reaping
session processes, and notifications."""
