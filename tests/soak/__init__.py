"""The rate-limit soak: many long tasks in one Slack channel and one Teams
conversation against fakes that answer 429 past the published limits."""
