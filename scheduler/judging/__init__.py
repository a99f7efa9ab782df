"""longrun.scheduler.judging: the judge step (evaluators run on a checkpoint, verdicts stored) and the
done-condition as the worker sees it."""
