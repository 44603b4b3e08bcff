"""Built-in apps (registered in Microtome's pyproject.toml, group ``microtome.apps``)."""
