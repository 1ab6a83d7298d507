"""Running tasks: the claim loop and a turn (`engine`), one step (`steps`), people's commands
(`commands`), decisions on approvals (`decisions`), schedules (`schedules`), their facade
(`controls`), the clock (`scheduler`), fault injection for tests. Imports the
other rooms of `tasks`."""
