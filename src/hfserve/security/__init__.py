"""Who may call the server and how much: API keys, rate limits, exposure rules. Nothing here
imports FastAPI or the runtime, so every front end can use it."""
