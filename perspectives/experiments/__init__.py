"""Experiments: bundled presets (the paper's case studies), sweeps of conditions x seeds and
where they run, shared prefixes between systems, the paper's Figure 2, and the reproduction
page."""
