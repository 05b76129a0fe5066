"""core: formats and facts, with neither DVC nor MLflow imported.

Owns the provenance record, the readers of ``dvc.yaml``/``dvc.lock``/``.dvc``/
params/metrics files, the one YAML loader, git facts and history, the typed
configuration, where a project's roots are, redaction, the software
environment, MLflow-safe names, dvflow's own pid-marked temporary folders
(``_scratch``), and the exception tree (``_exceptions``).

May import: nothing of dvflow outside core (and never ``dvc`` or ``mlflow``:
an import-linter contract in tests/test_architecture.py holds both).
"""
