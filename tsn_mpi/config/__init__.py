"""Configuration: schema, TOML loading, derived quantities and plugin resolution."""

from tsn_mpi.config.derived import Derived, derive
from tsn_mpi.config.load import Config, default_config, dump_toml, from_dict, load_config
from tsn_mpi.config.plugins import load_plugin

__all__ = [
    "Config", "Derived", "default_config", "derive", "dump_toml", "from_dict", "load_config",
    "load_plugin",
]
