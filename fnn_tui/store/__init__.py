"""The SQLite run store: schema and migrations (:mod:`.db`), rows <-> dataclasses (:mod:`.runs`).

The only package with SQL in it. It neither trains nor spawns nor signals processes.
"""
