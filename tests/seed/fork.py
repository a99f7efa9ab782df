"""textstats-fork (`RUN_FORK`): forked from textstats' abandoned line, with one live session."""

from __future__ import annotations

from datetime import timedelta

from longrun.scheduler.spec.overrides import apply_overrides
from longrun.scheduler.spec.run import RunSpec
from longrun.store import log, runs
from longrun.store.models import RunState
from seed.calls import bash_call, commit_call, edit_call, read_call
from seed.ids import CP_FORKED, CP_S2_END, RUN_ACTIVE, RUN_FORK, SEED_NOW, SESSION_LIVE, WHO
from seed.story import Repo, SeedRun, Story
from seed.textstats_files import INIT_REGEX, PYTEST_APOSTROPHE_FAIL, README_0, USAGE, pytest_ok

INIT_FORK = INIT_REGEX.replace('_WORD = re.compile(r"\\w+")', '_WORD = re.compile(r"\\w+(?:[\'-]\\w+)*")')

USAGE_FORK = USAGE.replace('"word " * 450)', '"word " * 450, wpm=200)')


def write_fork(story: Story) -> None:
    """textstats-fork: the regex tokenizer, given a second chance from the end of the abandoned line."""
    day = SEED_NOW.replace(hour=0)
    parent = story.runs[RUN_ACTIVE]
    target = runs.get_checkpoint(story.store, CP_S2_END)
    story.at(day + timedelta(hours=11, minutes=18, seconds=26))
    folder = parent.workspace.with_name(f"{parent.workspace.name}-fork-{RUN_FORK}")
    raw = {**parent.spec.model_dump(mode="json"), "name": "textstats-fork", "workspace": str(folder)}
    overrides = ['session.time_box="1h"']
    spec = RunSpec.model_validate(apply_overrides(raw, overrides))
    repo = Repo(folder, f"longrun/{RUN_FORK}")
    parent.repo.git(
        "worktree", "add", "-q", "-b", repo.branch, str(folder), f"{target.commit}^", when=story.now
    )
    run = SeedRun(RUN_FORK, spec.name, spec, repo)
    story.runs[run.id] = run
    story.flush()
    runs.insert_run(
        story.store,
        run_id=run.id,
        name=spec.name,
        goal=spec.goal,
        spec=spec.model_dump(mode="json"),
        spec_path=runs.get_run(story.store, parent.id).spec_path,
        workspace=str(folder),
        branch=repo.branch,
        state=RunState.paused,
        parent_run_id=parent.id,
    )
    story.later(0.03)
    first = story.checkpoint(run, None, "forked")
    assert first.id == CP_FORKED
    with story.store.writing() as conn:
        runs.set_run_state(conn, run.id, RunState.paused, f"forked from {parent.name} ({parent.id}) by {WHO}")
        data = {"parent_run_id": parent.id, "parent_checkpoint_id": target.id, "by": WHO}
        log.append(conn, run.id, "forked", data | {"checkpoint_id": first.id, "overrides": overrides})
        log.append(conn, parent.id, "fork_made", {"run_id": run.id, "checkpoint_id": target.id, "by": WHO})

    story.at(day + timedelta(hours=11, minutes=51, seconds=30))
    said = f"resumed by {WHO}"
    story.set_state(
        run,
        RunState.scheduled,
        said,
        due_at=None,
        hold_until=None,
        next_session_at=None,
        next_reason="resumed",
    )
    story.event(run.id, "resumed", {"by": WHO})
    s1 = story.session(run, story.now + timedelta(seconds=0.9), "resumed", 38816)
    s1.turn(
        "This fork keeps session 2's regex tokenizer. The handoff says word_count splits \"don't\" and "
        '"well-known"; let me see the failure.',
        bash_call("python -m pytest -q tests/test_word_count.py", PYTEST_APOSTROPHE_FAIL, is_error=True),
        out=520,
    )
    s1.turn(
        "A word can carry inner apostrophes and hyphens: \\w+(?:['-]\\w+)* keeps \"don't\" and "
        '"well-known" whole and still drops surrounding punctuation.',
        edit_call(
            "textstats/__init__.py",
            '_WORD = re.compile(r"\\w+")',
            '_WORD = re.compile(r"\\w+(?:[\'-]\\w+)*")',
        ),
        out=1150,
    )
    s1.turn(
        "Running all the tests.",
        bash_call("python -m pytest -q tests", pytest_ok(9, "0.03")),
        out=240,
    )
    s1.turn(
        "All nine pass with the regex. Committing.",
        commit_call("Keep apostrophes and hyphens inside words", {"textstats/__init__.py": INIT_FORK}),
        out=260,
    )
    s1.turn(
        "Now the README's Usage section. Reading the README first.",
        read_call("README.md", README_0),
        out=330,
    )
    story.at(day + timedelta(hours=11, minutes=59, seconds=40))
    s1.turn(
        "I'll add a Usage section with one example per function, with the wpm made explicit for "
        "reading_time so the result can be checked by eye.",
        edit_call(
            "README.md",
            "Run the tests with `python -m pytest -q tests`.\n",
            "Run the tests with `python -m pytest -q tests`.\n" + USAGE_FORK,
        ),
        out=980,
    )
    (folder / "README.md").write_text(README_0 + USAGE_FORK)
    story.at(day + timedelta(hours=11, minutes=59, seconds=58))
    s1.beat()
    assert s1.id == SESSION_LIVE
    repo.write_refs()
