"""The machine model contract: a deterministic stepper over simulated time.

A model advances in fixed steps of simulated time from t = 0, drawing noise from its own
seeded generator, so its state at time t depends only on (seed, machine name, t) and never on
how often the server ticks. That is what makes the series reproducible and testable without
servers.
"""

from __future__ import annotations

import math
import random
from abc import ABC, abstractmethod
from typing import ClassVar, Literal

from edge_agent.simulators.tags import LogixTag, ModbusTag, OpcuaTag, S7Tag, Value

__all__ = ["STEP_S", "Machine", "MachineProtocol", "TagSpecs", "lag_factor"]

MachineProtocol = Literal["modbus", "opcua", "s7", "enip"]
TagSpecs = tuple[ModbusTag, ...] | tuple[OpcuaTag, ...] | tuple[S7Tag, ...] | tuple[LogixTag, ...]

STEP_S = 0.1
_STEPS_PER_S = 10


def lag_factor(tau_s: float, dt_s: float = STEP_S) -> float:
    """Fraction of the gap a first-order lag with time constant `tau_s` closes in one step."""
    return 1.0 - math.exp(-dt_s / tau_s)


class Machine(ABC):
    """A simulated machine: physics state, its tags, and values in engineering units."""

    kind: ClassVar[str]
    prefix: ClassVar[str]
    protocol: ClassVar[MachineProtocol]
    vendor: ClassVar[str] = "Millstream simulator"
    model: ClassVar[str]
    tags: ClassVar[TagSpecs]

    def __init__(self, name: str, seed: int) -> None:
        self.name = name
        self.seed = seed
        # str seeds hash with SHA-512 in random.seed, so this is stable across processes.
        self.rng = random.Random(f"{seed}:{name}")  # noqa: S311 - simulation, not crypto
        self.steps = 0
        self._setup()

    @property
    def t(self) -> float:
        """Simulated seconds this model has advanced."""
        return self.steps / _STEPS_PER_S

    def advance_to(self, t: float) -> None:
        """Step the physics up to simulated time `t` (never backwards)."""
        target = int(t * _STEPS_PER_S + 1e-6)
        while self.steps < target:
            self._step(STEP_S)
            self.steps += 1

    def noise(self, sigma: float) -> float:
        """Gaussian noise from the machine's own generator; draw it in `_step` only."""
        return self.rng.gauss(0.0, sigma)

    @abstractmethod
    def _setup(self) -> None:
        """Initialise the physics state (draws from `self.rng` are part of the series)."""

    @abstractmethod
    def _step(self, dt: float) -> None:
        """Advance the physics by `dt` simulated seconds."""

    @abstractmethod
    def values(self) -> dict[str, Value]:
        """Current value of every tag, in engineering units, keyed by tag name."""

    def write(self, tag: str, value: Value) -> None:
        """A client wrote a writable tag (its spec says `writable`); the model takes it.

        Machines with writable tags override this; the write shows in `values()` from now on.
        """
        raise ValueError(f"{self.name}: {tag} is not writable")
