"""The exchange simulator: Piexgo and Cryptology as their documents describe them, with
scripted faults. ``serve()`` runs it; ``alertd simulate`` is its command line."""

from alertd.simulator.scenarios import SCENARIOS, Scenario
from alertd.simulator.server import Simulator, serve

__all__ = ["SCENARIOS", "Scenario", "Simulator", "serve"]
