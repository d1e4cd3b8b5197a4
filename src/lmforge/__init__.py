"""lmforge: the whole language-model life cycle in one toolkit."""

__version__ = "0.1.0"
