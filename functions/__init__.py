"""Thin function handlers: unpack the event, call one typed function in ``shared``."""
