"""Running notebooks through papermill, capturing the experiment, storing runs, sweeps, gates."""
