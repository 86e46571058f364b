"""Sources: where documents come from besides uploads (web URLs, bucket prefixes, drives)."""
