"""Ragline's library: everything the thin function handlers call into."""
