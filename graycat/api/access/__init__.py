"""Who may do what, and how much: tokens, limits, quotas, hardening against hostile input, CORS."""
