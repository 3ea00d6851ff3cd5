"""The agent the CSM chats with: a turn asked for (`chat.py`) and as it runs (`turn.py`), its part
log (`part_log.py`) and resuming its stream (`resume.py`), the sessions themselves, their typed
record and the rule of their streams (`sessions.py`), the model → tools → model loop (`loop.py`),
the tools it may call (`tools.py`), the history it is given (`history.py`), and the UI message
stream parts it answers with (`stream.py`)."""
