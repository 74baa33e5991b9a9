"""Learning from citizens (issue 19): suggestions from real traffic, owners and routing of feedback, freshness.

Above handoff (it reads conversations, clarify choices, feedback and agents' answers) and below insights."""
