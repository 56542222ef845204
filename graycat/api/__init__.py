"""The HTTP gateway: authenticate, validate, enqueue, and render job events in the client's dialect."""
