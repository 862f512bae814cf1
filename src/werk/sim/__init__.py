"""The simulated demo plant: seeded machine models and an MQTT publisher for them."""

from werk.sim.machines import Machine, MachineSpec, Reading, State
from werk.sim.plant import DemoPlant, demo_machines

__all__ = ["DemoPlant", "Machine", "MachineSpec", "Reading", "State", "demo_machines"]
