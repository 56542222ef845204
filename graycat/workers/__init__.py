"""Workers: pull jobs from the queue and run them on an engine."""
