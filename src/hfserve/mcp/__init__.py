"""The MCP front end: every served model and task as a tool, models and hardware as
resources, a prompt per chat model; over streamable HTTP at ``/mcp`` in the app and over
stdio (``hfserve mcp``). Like the HTTP routes it stands on the engine seam only."""
