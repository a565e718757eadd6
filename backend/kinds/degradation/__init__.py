"""Kind `degradation`: weight-degradation sweeps of an instruction-tuned model (seed 001).

config.py (parameters), experiment.py (run / dry_run), sweep.py (the resumable
loop), groups.py (parameter groups from the model), methods.py (mult_gauss,
ablation, uni_quant), restore.py (subset_in_memory), metrics.py (text metrics),
promptsets.py + prompts/ (shipped prompt sets), exports.py (seed-json).
"""
