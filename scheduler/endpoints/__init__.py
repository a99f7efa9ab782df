"""longrun.scheduler.endpoints: the HTTP endpoints longrun serves on loopback: the scripted model
server (`scripted/`) and the metering proxy (`metering`) that a worker with its own API client calls,
both `loopback.LoopbackServer`s.
"""
