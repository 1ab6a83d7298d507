"""Running tasks: the claim loop and a turn (`engine`), one step (`steps`), people's commands
and decisions (`controls`), the clock (`scheduler`), fault injection for tests. Imports the
other rooms of `tasks`."""
