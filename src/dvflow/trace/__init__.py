"""trace: lineage and impact, where a data version, run or model came from and what it feeds.

Owns the graph types (``_graph``), the SQLite index of Git history and the
tracking store (``_index``, ``_reader``, ``_listings``), the walk over it
(``_lineage``, ``_walk``, ``_nodes``), the ``lineage``/``impact``/``index``
queries (``_queries``), the text, JSON, DOT and Mermaid renderings, and the
runs and records that ``show``, ``diff``, ``verify`` and ``check`` read from
the index while it is fresh (``_records``, with the write-through
``note_store`` the writing commands call).

A warm query (the index is current) imports no MLflow: a contract names the
modules of that path.

May import: stores, core.
"""
