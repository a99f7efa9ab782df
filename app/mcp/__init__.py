"""`longrun mcp`: the run store as an MCP server, on the official `mcp` SDK, so any MCP client (an
interactive Claude Code session, Claude Desktop, an agent) can read a run's status and what its
next session will be told, hand work off into it, note progress, and answer or decide what waits
for a person.

`server` builds the server and its tools (each a thin call into `scheduler.control` or the store's
reads, so nothing bypasses the event log), `status` shapes what the read tools hand out,
`resources` serves a run's spec and report, and `http` puts the server behind a bearer token for
`--http`.
"""
