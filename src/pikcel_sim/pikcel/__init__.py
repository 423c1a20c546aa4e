"""A faithful simulator of the PikcelAI API (DESIGN §3) that really processes images.

`create_app(SimConfig(...))` gives an ASGI app; `pikcel-jobs sim pikcel` runs it standalone.
It never imports `pikcel_jobs`: it is an independent implementation of the protocol.
"""

from .app import Simulator, create_app
from .config import FaultConfig, SimConfig

__all__ = ["FaultConfig", "SimConfig", "Simulator", "create_app"]
