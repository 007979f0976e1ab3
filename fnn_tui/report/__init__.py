"""Tables and figures made from the store."""
