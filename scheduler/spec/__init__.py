"""longrun.scheduler.spec: the run spec, a TOML file that says what a run is for, who works on it and
within which limits.

`load.load_spec` and `load.parse_spec` are the doors in; `run.RunSpec` is the validated spec, made
of the tables in `worker`, `tables` and `checks`; `messages` turns every problem into one line
naming the file (or `--set`, see `overrides`) and the key; `durations` reads `90s`, `5h`, `1d`.
Each backend's `[worker]` table is named by `longrun.scheduler.workers.registry`.
"""
