"""governance: what the data costs, what may be deleted, what holds personal data.

Owns ``dvflow storage`` (bytes and cost per remote, path and data version,
and what each byte is kept for), registry-aware ``dvflow gc plan|apply``
(the keep set from the lineage of protected model versions and the Git
scopes named, plans with a digest, audited deletes), the MLflow side of gc,
``dvflow pii`` (personal-data marks and the taint they spread through the
lineage, stopped by declared sanitiser stages) and ``dvflow erase plan|apply``
(erasure requests, with tombstones that ``verify`` reads).

May import: runs, _registry, export, proof, trace, stores, core.
"""
