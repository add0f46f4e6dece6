"""hfserve: one server for every HuggingFace model, behind the OpenAI API."""

__version__ = "0.1.0"
