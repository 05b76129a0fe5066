"""cli: the command line, a thin click layer on top of every other wing.

Owns the entry point and its one error handler (``_main``), the commands
(``_cli``, ``_cli_graph``, ``_cli_export``), the flags they share (``_options``), how results
look on a terminal (``_views``) and the demo with its bundled project
(``_demo``, ``_demo_project/``).

May import: every wing. Nothing imports cli but ``dvflow.__main__``, the
``dvflow`` console script, and the package root (which exports ``run_demo``).
"""
