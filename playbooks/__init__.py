"""Health scorecard, ABM portfolio and the playbook rule engine. Built-in playbooks live in
``builtin/`` as YAML; they are data, reviewed like code."""
