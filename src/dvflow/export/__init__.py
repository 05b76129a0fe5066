"""export: dvflow's lineage handed to other systems: OpenLineage events, signed attestations.

Owns the offline export (``dvflow export openlineage``): the events of each
recorded stage and pipeline run (``_openlineage``), the dataset and job names
of OpenLineage's naming spec (``_naming``), reading the runs and records to
export from the lineage index (``_export``), and the JSON schema of the
``dvflow_provenance`` run facet (``dvflow_provenance.schema.json``, shipped in
the package). docs/openlineage.md tells what maps to what.

Also signed attestations (docs/attestations.md): keys and DSSE envelopes
(``_dsse``), hashing what records name by sha256 (``_hashing``, ``_content``),
the in-toto statement (``_statement``), ``dvflow attest`` (``_attest``),
``verify --pubkey`` (``_verify_attest``), bundles of one statement per stage
(``_bundle``), the gates of promote, check (``_gates``) and their errors
(``_errors``).

May import: proof, trace, stores, core. The runs wing imports it to send
events live while a run goes (``_emit``).
"""
