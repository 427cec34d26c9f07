"""One module per job: parse args -> config -> call pipelines/models -> write. Run as `python -m jobs.<name>`."""
