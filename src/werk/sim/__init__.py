"""The simulated demo plant: seeded machine models and an MQTT publisher for them."""

from werk.sim.brownfield import DEFAULT_SPLIT, BrownfieldPlant, Endpoint
from werk.sim.machines import Machine, MachineSpec, Reading, State
from werk.sim.plant import DemoPlant, demo_machines

__all__ = [
    "DEFAULT_SPLIT",
    "BrownfieldPlant",
    "DemoPlant",
    "Endpoint",
    "Machine",
    "MachineSpec",
    "Reading",
    "State",
    "demo_machines",
]
