"""Score Field Playground: the Qt application over sgm_core."""
