"""export: dvflow's lineage handed to other systems, as OpenLineage events.

Owns the offline export (``dvflow export openlineage``): the events of each
recorded stage and pipeline run (``_openlineage``), the dataset and job names
of OpenLineage's naming spec (``_naming``), reading the runs and records to
export from the lineage index (``_export``), and the JSON schema of the
``dvflow_provenance`` run facet (``dvflow_provenance.schema.json``, shipped in
the package). docs/openlineage.md tells what maps to what.

May import: proof, trace, stores, core. The runs wing imports it to send
events live while a run goes (``_emit``).
"""
