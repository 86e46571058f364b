"""Outbound requests to URLs users give: the SSRF guard and the client built on it."""
