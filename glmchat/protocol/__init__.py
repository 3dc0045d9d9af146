"""Wire dialects: build the request for a turn, parse the stream into typed events.

Nothing here does I/O or knows about storage or the screen.
"""
