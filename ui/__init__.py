"""Streamlit UI layer: cached loaders, widgets returning config objects, display helpers.

The only package besides ``pages/`` and ``app.py`` that imports streamlit; all computation lives
in ``xai_core``.
"""
