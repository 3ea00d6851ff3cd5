"""The agent the CSM chats with: a turn in a session (`chat.py`), the sessions themselves and the
rule of their streams (`sessions.py`), the model → tools → model loop (`loop.py`), the tools it
may call (`tools.py`), the history it is given (`history.py`), and the UI message stream parts
it answers with (`stream.py`)."""
