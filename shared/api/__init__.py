"""HTTP routes of the functions and the one table mapping domain errors to statuses."""
