"""Developer tooling: the local stack, run-once, data generation and replay. Not deployed; imports lib/, never imported by it."""
