"""glmchat: a terminal chat client for GLM-4.7."""

__version__ = "0.1.0"
