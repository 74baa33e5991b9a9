"""The human side: conversations, the agent queue, agents and their sessions."""
