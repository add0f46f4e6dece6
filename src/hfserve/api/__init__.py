"""HTTP layer: OpenAI-compatible routes over the engine façade."""
