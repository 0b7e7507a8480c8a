"""The scoring stage: prediction files in, case records out.

- `outputs`: validate a prediction against its input (format, geometry, pixel type, label ids);
- `case`: score one case (`CaseJob` -> `score_files` -> a record), never raising for that case;
- `pool`: score many cases in worker processes (`ScoringPool`); `workers`: how many, started how
  (`default_workers`, `start_early`); `preload`: what their forkserver loads once for all of them;
- `nifti_gz`: .nii.gz label images inflated once, strictly (truncation and oversize refused);
- `evaluate`: score a folder of prediction files against a test set (`harness evaluate`).

Image reading itself is `harness.imageio` (shared with data preparation and the protocol adapters);
the arrays-in, numbers-out metrics are `metrics/`; records and aggregation are `harness.results`.
Nothing is re-exported here: import from the module that defines a name.
"""
