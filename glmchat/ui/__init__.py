"""The Textual app: screens, widgets and themes on top of the core."""
