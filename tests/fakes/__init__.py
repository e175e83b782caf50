"""Fakes for tests: a virtual clock and fake provider servers speaking real wire formats."""
