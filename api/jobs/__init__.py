"""Worker jobs: periodic work run by `entitle worker`."""
