"""The `em` kind: emergent-misalignment training and checkpoint evaluation (seed 000)."""
