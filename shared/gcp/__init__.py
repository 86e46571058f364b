"""Google Cloud transports: the Pub/Sub publisher and the Cloud Tasks queue."""
