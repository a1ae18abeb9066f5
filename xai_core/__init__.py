"""Vocal XAI Studio compute core: explains what a singing-voice detector has learned.

Never imports streamlit; usable from Python and from the CLI ``python -m xai_core``.
"""

__version__ = "0.1.0"
