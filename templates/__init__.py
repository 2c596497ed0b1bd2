"""Jinja2 templates: outreach email drafts (ja, en) and CRM task texts.

Any of these can be overridden by a file of the same name in ``templates.folder`` (kizuna.yaml).
Templates render in a sandbox with StrictUndefined; see README "Templates" for the context.
"""
