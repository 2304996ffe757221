"""Business rules: plain async functions taking a session, ids, values, `today` and the policy."""
