"""Files: config sections and their validator, run directories, checkpoints, tables."""
