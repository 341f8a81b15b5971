"""The gate: a robustness regression test for CI (`robustmix bench`): a spec of models and metrics,
a committed baseline of their per-example correctness, and a paired comparison with it.

    targets.py  the spec's model tables ([[targets]], [surrogate]): ModelSpec and the TrainConfigs they train
    spec.py     the TOML spec: parsed, validated, its canonical form and hash, the metric ids
    gate.py     measure the spec, make or read a baseline, compare, decide, render

May import: runtime, data, models, attacks, store, training, evaluation, soundness, analysis, reporting.
"""
