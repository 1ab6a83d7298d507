"""Pure decisions, time passed in: task and step states, plans, retry, budgets, approvals,
the policy, what an approval covers, egress, retention. Imports nothing else of `tasks`."""
