"""CRM connectors: one module per CRM behind the ``Connector`` protocol in ``connectors.base``."""
