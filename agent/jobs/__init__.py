"""The job lifecycle (an explicit state table), the durable job store and the runner."""
