"""CPU-scale plans presets and the command that applies them."""
