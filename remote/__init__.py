"""heqis_remote — Fabric fleet bring-up (step 6). Depends on ``heqis``, never the reverse."""
