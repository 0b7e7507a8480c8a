"""Scale-out: run submissions across many (GPU) machines on Dask, with the sandbox and results of a local run.

- `harness run --scheduler ADDRESS | --cluster local:N` (harness/cli/run.py) runs the one driver loop on `runner.DaskExecutor`;
- `cluster`: connect to a scheduler, or start a local cluster on 127.0.0.1;
- `runner`: the executor: one task per container step, scoring as CPU tasks, infrastructure failures;
- `tasks`: the Dask task functions, and what each worker checks before running anything (engine, image id, data);
- `datacheck`: the data root verified against the manifest, once per node;
- `errors`: what a worker raises for the client to act upon.

See docs/scale_out.md for the Slurm (dask-jobqueue) and GPU-server setups.
"""
