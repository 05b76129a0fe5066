"""stores: the adapters, the one place each of DVC and MLflow is imported.

Owns the DVC adapter (``_dvc``, ``_dvcstage``, ``_remote``, ``_repro``; the
inventory of a remote's and the cache's objects, ``_objects``), the
MLflow tracking adapter (``_tracking``, ``_storecheck``), the DVC dataset
source for MLflow (``_dataset``), the local spool with its journal of open
runs (``_spool``, ``_openruns``, ``_leftover``), interrupt handling, and the
checks on what a store hands back before it is written to disk (``_confine``).
Each third-party error is translated here into a ``DvflowError``.

May import: core.
"""
