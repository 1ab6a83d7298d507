"""Per-conversation rate limits for posting to Teams.

Teams throttles a bot per conversation ("Rate limiting for bots" on Microsoft
Learn): at most 7 messages per second, 8 per 2 seconds, 60 per 30 seconds and
1,800 per hour. Each rule is a sliding window (adapters/pacing.py says why).
"""

from __future__ import annotations

from adapters.pacing import Rules, SlidingLimits

TEAMS_RULES: Rules = ((7, 1.0), (8, 2.0), (60, 30.0), (1800, 3600.0))


class ConversationLimits(SlidingLimits):
    """One set of Teams windows per conversation id."""

    def __init__(self, rules: Rules = TEAMS_RULES) -> None:
        super().__init__(rules)
