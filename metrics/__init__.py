"""Per-organ segmentation metrics of the A-Eval benchmark (work in progress)."""
