"""runs: ``dvflow run``, DVC's repro with every stage recorded as an MLflow run.

Owns the pipeline session (``_pipeline``), the pieces of the records it
writes (``_recording``), pushing while recording (``_push``), the one-run-
per-work-tree lock, the dry run, binding runs to a later commit (``_bind``)
and what a run returns (``_results``).

May import: the registry (``dvflow._registry``), export, proof, trace, stores, core.
"""
