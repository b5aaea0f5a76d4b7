"""Training and evaluating models: labelled data and its cache (data), the phases and the one loop
(phases, trainer, train), the ablation heads and metrics reports (evaluate), torchrun (distributed),
and the `train` and `evaluate` commands (commands). Nothing outside this package imports it but
those commands."""
