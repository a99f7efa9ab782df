"""longrun.scheduler.guards: what stops waste and risk, as pure functions: budgets, pricing, circuit
breakers, and the approval policy for tool calls."""
