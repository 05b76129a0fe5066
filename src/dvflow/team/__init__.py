"""team: setting a project up and working on it with others and CI.

Owns ``init`` (``_project``) and its CI workflow template (``_ci``),
``doctor``, ``sync`` of the local spool to the team's store (the copying itself in
``_copier``), and the CI gate
``check`` (``_gate``).

May import: runs, the registry, export, proof, trace, stores, core.
"""
