"""Job names in one place: the web side enqueues by these, the worker registers them."""

HEARTBEAT = "heartbeat"
SEND_NOTICES = "send_notices"
DAILY_JOBS = "daily_jobs"
