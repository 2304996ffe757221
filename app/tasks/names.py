"""Job names in one place: the web side enqueues by these, the worker registers them."""

HEARTBEAT = "heartbeat"
