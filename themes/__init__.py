"""Themes shipped with glmchat, as TOML files (installed as the package ``glmchat.themes``)."""
