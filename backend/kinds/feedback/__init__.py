"""The `feedback` kind: counterfactual feedback processing, fine-tuning with loss on the
last assistant message only, and pairwise LM-as-judge evaluation (seed 002)."""
