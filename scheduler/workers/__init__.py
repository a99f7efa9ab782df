"""longrun.scheduler.workers: what does the work in a session.

`base` is the contract every backend follows; `registry` maps a spec's `[worker] backend` to its
worker and its spec table. A new backend is one module here and one line in the registry.
"""
