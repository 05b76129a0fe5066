"""proof: is a recorded result still what it claims, and does it reproduce?

Owns reading a record back and checking its digest (``_show``), the quick
checks (``_checks``), ``verify`` and its rebuild (``_verify``, ``_rebuild``),
``checkout`` and ``diff``.

May import: trace, stores, core.
"""
