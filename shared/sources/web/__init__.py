"""The ``url`` source type: SSRF-safe fetching, robots.txt, sitemaps, links, the crawler."""
