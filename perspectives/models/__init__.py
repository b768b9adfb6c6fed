"""Models: the agent contract, the registries of backends and update rules, and what is built
on them (transformers answering and fine-tuning, the fake test double, initial models,
collecting responses). Importing this package loads no model library."""

from .contract import Agent, AgentSpec, LanguageModel
from .registry import backends, load_agent, make_agent, make_model, update_rules
from .spec import GenerationConfig, ModelSpec, Sampling
from .update import TrainStats, UpdateConfig

__all__ = [
    "Agent",
    "AgentSpec",
    "GenerationConfig",
    "LanguageModel",
    "ModelSpec",
    "Sampling",
    "TrainStats",
    "UpdateConfig",
    "backends",
    "load_agent",
    "make_agent",
    "make_model",
    "update_rules",
]
