"""What a step can do: the skill contract (`base`), argument checks, the catalog, one module
per family (chat, core, llm, web, mail, mcp, schedule) and the LLM client. Imports `tasks.rules`
and `tasks.store.store`."""
