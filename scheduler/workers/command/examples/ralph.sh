#!/bin/sh
# One iteration of a Ralph loop, as one longrun session: read the context longrun wrote, take the
# first feature the judge has not passed, hand it to an agent, and leave a handoff. longrun runs
# the loop (one iteration a session), judges each one, and keeps the budget and the breakers.
#
#   [worker]
#   backend = "command"
#   command = ["sh", "/path/to/ralph.sh"]
#   env = { RALPH_AGENT = "claude -p" }   # a command line; the prompt is added as its last word
set -u
agent=${RALPH_AGENT:-"claude -p"}
trap 'echo "longrun says: wrap up" >&2' USR1   # an iteration is short: it finishes as it is

feature=$(grep -E '^- \[[a-z_]+\] [^:]+:' "$LONGRUN_CONTEXT_FILE" | grep -v '^- \[pass\]' | head -n 1 |
    sed -E 's/^- \[[a-z_]+\] ([^:]+):.*/\1/')
if [ -z "$feature" ]; then
    echo '{"done": [], "next": [], "notes": "Every feature passes."}' >"$LONGRUN_HANDOFF_FILE"
    exit 0
fi
echo "{\"kind\": \"progress\", \"text\": \"working on $feature\"}" >>"$LONGRUN_EVENTS_FILE"
echo "{\"kind\": \"tool_call\", \"tool\": \"agent\", \"input\": {\"feature\": \"$feature\"}}" >>"$LONGRUN_EVENTS_FILE"

export RALPH_FEATURE="$feature"
prompt="$(cat "$LONGRUN_CONTEXT_FILE")

Work on the feature \"$feature\" only. Commit when its check passes."
sh -c "$agent \"\$1\"" ralph "$prompt"
status=$?
[ "$status" -eq 75 ] && exit 75   # the agent hit a usage limit: so does the session

failed=$([ "$status" -eq 0 ] && echo false || echo true)
echo "{\"kind\": \"tool_result\", \"tool\": \"agent\", \"is_error\": $failed, \"output\": \"exit $status\"}" \
    >>"$LONGRUN_EVENTS_FILE"
git add -A && git commit -qm "ralph: $feature" >/dev/null 2>&1
if [ "$status" -eq 0 ]; then
    echo "{\"done\": [\"worked on $feature\"], \"next\": [], \"notes\": \"\"}" >"$LONGRUN_HANDOFF_FILE"
else
    echo "{\"done\": [], \"next\": [\"$feature\"], \"blockers\": [\"the agent exited $status\"]}" \
        >"$LONGRUN_HANDOFF_FILE"
fi
exit 0
