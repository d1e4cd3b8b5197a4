"""Serving a local model over HTTP: :mod:`.engine` (the model, one request at a time) and
:mod:`.openai_server` (an OpenAI-compatible API in front of it; ``lmforge serve``)."""
