"""Kizuna's Slack surface: pure Block Kit builders here, the slack-bolt app around them."""
