"""lmforge: the whole language-model life cycle in one toolkit."""
import os as _os

# OpenMP threads that spin while waiting collapse when a 2-core machine has any other busy process (a 2-thread
# training step of the demo model went from 0.19 s to 4.3 s); passive waiting keeps them at single-thread
# speed then. Must be set before torch loads its OpenMP runtime; an explicit user setting wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
