"""What one run's training changes epoch by epoch, and what its resume state file holds."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

import defenses
from bench.train.selection import Selection


@dataclass
class TrainState:
    """Everything an epoch changes, and what the resume state file holds."""

    model: nn.Module
    defense: defenses.Defense
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.MultiStepLR
    done: int = 0
    sel: Selection = field(default_factory=Selection)
    history: list[dict] = field(default_factory=list)

    scaler: torch.amp.GradScaler | None = None
    step_model: nn.Module | None = None  # what training calls: channels_last, maybe compiled
    loss_model: nn.Module | None = None  # what the loss calls: step_model, DDP-wrapped in a group
    estimated: bool = False  # the job's cost was said (once per process)

    def to_file(self) -> dict:
        return {
            "epoch": self.done,
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(),
            **self.sel.to_file(),
            "history": self.history,
            "defense": self.defense.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else {},
        }

    def load(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        self.done, self.sel = state["epoch"], Selection.from_file(state)
        self.history = state["history"]
        self.defense.load_state_dict(state.get("defense", {}))
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
