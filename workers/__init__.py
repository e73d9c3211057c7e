"""The work itself: what one worker does to one object or one batch (see docs/architecture.md).

Nothing in this package imports ``daemon``; pure logic here is sans-I/O.
"""
