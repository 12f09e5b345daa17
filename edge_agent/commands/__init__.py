"""Commands from the hub: kept in SQLite, executed at most once, answered on `cmd/res`.

journal.py      the command journal (commands.db in the agent's state directory)
executor.py     receive → journal → check expiry → write through the device's driver → result
reconfigure.py  `config` commands: validate, switch, prove the new version or roll back
"""

from edge_agent.commands.executor import CommandExecutor
from edge_agent.commands.journal import CommandJournal
from edge_agent.commands.reconfigure import Reconfigurer

__all__ = ["CommandExecutor", "CommandJournal", "Reconfigurer"]
