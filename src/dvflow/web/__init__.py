"""web: ``dvflow ui``, a read-only local web view of lineage and records.

Owns the Starlette app and its pages (``_app``, Jinja2 templates with
autoescape in ``templates/``), what they show read through the read
commands' own functions (``_read``: ``trace``'s lineage and impact,
``proof``'s show, diff and verify), and the uvicorn server bound to
loopback (``_serve``). The graph is an SVG laid out in Python
(``trace/_svg``): no CDN, no JavaScript library, no build step.

May import: team, export, runs, _registry, proof, trace, stores, core
(everything but cli).
"""
