"""longrun.scheduler.judging: the judge step (evaluators run on a checkpoint in a tree the judge owns,
verdicts stored), the check harness pinned at the done-condition's approval, and the done-condition
as the worker sees it."""
