"""autoal's Hydra config groups (YAML files), shipped inside the package: Hydra composes them
through the ``pkg://autoal.conf`` search path (``autoal.cli.common.compose``)."""
