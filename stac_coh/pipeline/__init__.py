"""The one run orchestration shared by local runs, the demo and the Batch worker."""
