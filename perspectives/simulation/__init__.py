"""Simulation: a system of interacting models as a config, its communication policies and
interaction mechanics, the engine that steps it, the run folder it writes, and its history in
perspective space."""
