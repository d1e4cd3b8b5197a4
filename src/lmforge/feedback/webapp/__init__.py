"""The labeling web app (FastAPI, server-rendered Jinja pages, a small script for keyboard and drag ranking)."""
from .app import create_app

__all__ = ["create_app"]
