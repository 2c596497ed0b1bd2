"""Local stand-ins for the CRM and Slack services: real HTTP servers on an ephemeral port.

Each fake speaks the vendor's documented API (not what our code happens to send) and records
every call, so tests drive the real client libraries against them and assert on the traffic.
"""
