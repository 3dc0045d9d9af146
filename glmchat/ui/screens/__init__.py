"""Screens of the TUI: the chat screen and the modal dialogs."""
