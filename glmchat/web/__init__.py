"""`glmchat serve`: the TUI in a browser tab (see `glmchat.web.server`).

Imported only by `glmchat serve`: the other commands never load the web server.
"""
