"""Out-of-sample evaluation of training runs: ``heqis evaluate`` (docs/architecture.md, "Evaluation")."""
