"""heqis_console — the Textual operator console (step 7). Depends on ``heqis``, never the reverse."""
