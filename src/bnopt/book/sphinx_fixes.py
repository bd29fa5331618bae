"""A Sphinx extension for the book's HTML (listed in _config.yml's `extra_extensions`).

sphinx-thebe registers its inline configuration script once per read of the sources, so a full rebuild
puts `const THEBE_JS_URL = ...` twice on every page, and the browser reports a redeclaration error on
each page. The book has no live-code buttons, so this keeps the first copy of each script only.
"""
from __future__ import annotations


def _dedupe_scripts(app, pagename, templatename, context, doctree):
    seen, kept = set(), []
    for js in context.get("script_files", []):
        # the same script registered twice may differ in priority, and an inline script has filename
        # None or "" depending on who added it
        key = (str(getattr(js, "filename", js) or ""), tuple(sorted(getattr(js, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            kept.append(js)
    if "script_files" in context:
        context["script_files"][:] = kept


def setup(app):
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
