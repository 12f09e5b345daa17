"""Commands to machines: issued through the API, sent to the machine's agent over MQTT,
answered on `…/cmd/res` (stored by the ingest like any message), kept as the audit log.

    store.py   the `commands` table: record, read one, list (PostgreSQL or SQLite)
    issue.py   one write, call or acknowledge from the API: find the agent, record, publish, wait
    configs.py each agent's configuration in versions; push one (a `config` command)
"""
